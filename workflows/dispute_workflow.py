"""The dispute graph: its topology and routing (docs/architecture.md).

The nodes' behaviour lives in agents/, one module per node; they depend on this layer (the
runtime context), so they are handed in as `GraphNodes` by the composition root
(`agents.NODES`) rather than imported here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from dataclasses import dataclass, fields
from typing import Any, Literal, Protocol

import psycopg
import psycopg_pool
import sqlalchemy.exc
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.config import get_config
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime

from models.approvals import approval_state
from models.state import DisputeState
from services.errors import AttentionRequired, IntegrationError, PaymentsAgentError
from services.tracing import traced_step
from workflows.context import WorkflowContext

log = logging.getLogger(__name__)

TRANSIENT_DATABASE_ERRORS: tuple[type[BaseException], ...] = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    psycopg_pool.PoolTimeout,
)


class Node(Protocol):
    def __call__(
        self, state: DisputeState, *, runtime: Runtime[WorkflowContext]
    ) -> Awaitable[dict[str, Any]]: ...


DisputeGraph = CompiledStateGraph[DisputeState, WorkflowContext, DisputeState, DisputeState]


class RetryableStepError(Exception):
    """A step failed in a way that may pass later (an outage): the run stays resumable.

    With `park`, no automatic attempt follows: the run is `needs_attention` at once.
    """

    def __init__(self, step: str, cause: PaymentsAgentError, *, park: bool = False) -> None:
        super().__init__(f"{step}: {cause.message}")
        self.step = step
        self.cause = cause
        self.park = park


def money_moved(state: DisputeState) -> bool:
    """True once the run's refund or credit has been made (or is pending at the provider)."""
    return bool((state.get("execution") or {}).get("money_moved"))


def guarded(name: str, node: Node) -> Node:
    """Run a node; a non-retryable error becomes state for handle_error.

    A retryable error (after the adapters' own retries) propagates out of the graph instead,
    so the checkpoint stays before this node and the run can be driven again later. Once
    money has moved no error ends the run: every error is retried, then parks the run.
    """

    async def run(state: DisputeState, *, runtime: Runtime[WorkflowContext]) -> dict[str, Any]:
        try:
            update = await node(state, runtime=runtime)
        except GraphBubbleUp:
            raise  # interrupt(): not an error
        except AttentionRequired as exc:
            raise RetryableStepError(name, exc, park=True) from exc
        except PaymentsAgentError as exc:
            if exc.retryable or money_moved(state):
                raise RetryableStepError(name, exc) from exc
            return _error_update(name, exc)
        except TRANSIENT_DATABASE_ERRORS as exc:
            # The database or the connection to it failed, not the step's logic: try again.
            cause = IntegrationError(
                f"database unavailable ({type(exc).__name__})", system="postgresql", retryable=True
            )
            raise RetryableStepError(name, cause) from exc
        except Exception as exc:  # the graph's boundary: any defect ends the run as failed
            log.exception("step %s failed", name, extra={"run_id": state.get("run_id")})
            if money_moved(state):
                defect = PaymentsAgentError(f"{type(exc).__name__}: {exc}"[:2000])
                raise RetryableStepError(name, defect) from exc
            return _error_update(name, exc)
        return {**update, "current_step": name}

    return traced(name, run)


def traced(name: str, node: Node) -> Node:
    """Run a node inside its step's span and metrics (services/tracing.traced_step)."""

    async def run(state: DisputeState, *, runtime: Runtime[WorkflowContext]) -> dict[str, Any]:
        with traced_step(name, step=_step_number()) as step:
            update = await node(state, runtime=runtime)
            step.update = update
            return update

    run.__name__ = name
    return run


def _step_number() -> int | None:
    step = get_config().get("metadata", {}).get("langgraph_step")
    return int(step) if step is not None else None


def _error_update(step: str, exc: Exception) -> dict[str, Any]:
    message = exc.message if isinstance(exc, PaymentsAgentError) else str(exc)
    return {
        "current_step": step,
        "error": {"step": step, "type": type(exc).__name__, "message": message[:2000]},
    }


def _failed(state: DisputeState) -> bool:
    return state.get("error") is not None


def after_fetch(state: DisputeState) -> Literal["validate_dispute", "handle_error"]:
    return "handle_error" if _failed(state) else "validate_dispute"


def after_validate(
    state: DisputeState,
) -> Literal["generate_resolution", "store_results", "handle_error"]:
    if _failed(state):
        return "handle_error"
    validation = state.get("validation")
    if validation is None:
        raise ValueError("validate_dispute left no verdict")
    return "generate_resolution" if validation["valid"] else "store_results"


def after_generate(state: DisputeState) -> Literal["route_review", "handle_error"]:
    return "handle_error" if _failed(state) else "route_review"


def after_route(
    state: DisputeState,
) -> Literal["move_money", "send_human_review", "handle_error"]:
    if _failed(state):
        return "handle_error"
    review = state.get("review")
    if review is None:
        raise ValueError("route_review left no review plan")
    return "move_money" if review["auto_approve"] else "send_human_review"


def after_send(state: DisputeState) -> Literal["wait_human_review", "handle_error"]:
    return "handle_error" if _failed(state) else "wait_human_review"


def after_wait(
    state: DisputeState,
) -> Literal["wait_human_review", "move_money", "answer_dispute", "store_results", "handle_error"]:
    if _failed(state):
        return "handle_error"
    decisions = state.get("decisions") or []
    review = state.get("review")
    proposal = state.get("proposal")
    if not decisions or review is None or proposal is None:
        raise ValueError("wait_human_review finished without a decision")
    approval = approval_state(proposal, review, decisions)
    if approval.rejected_by is not None:
        return "store_results"
    if not approval.satisfied:
        # Dual control, or a modification: the version that would execute needs more
        # approvals of its own, from reviewers who have not approved it yet.
        return "wait_human_review"
    return "answer_dispute" if state.get("kind") == "chargeback" else "move_money"


def after_move(state: DisputeState) -> Literal["update_case", "store_results", "handle_error"]:
    if _failed(state):
        return "handle_error"
    # Only a CRM dispute has a CRM case to update.
    return "update_case" if state.get("kind", "dispute") == "dispute" else "store_results"


def after_answer(state: DisputeState) -> Literal["store_results", "handle_error"]:
    return "handle_error" if _failed(state) else "store_results"


def after_update(state: DisputeState) -> Literal["store_results", "handle_error"]:
    return "handle_error" if _failed(state) else "store_results"


def after_store(state: DisputeState) -> Literal["handle_error", "__end__"]:
    return "handle_error" if _failed(state) else "__end__"


@dataclass(frozen=True)
class GraphNodes:
    """The graph's steps, by name; every one but `handle_error` runs `guarded`."""

    fetch_data: Node
    validate_dispute: Node
    generate_resolution: Node
    route_review: Node
    send_human_review: Node
    wait_human_review: Node
    move_money: Node
    answer_dispute: Node
    update_case: Node
    store_results: Node
    handle_error: Node


def build_graph(nodes: GraphNodes, checkpointer: BaseCheckpointSaver[Any]) -> DisputeGraph:
    """Assemble and compile the dispute graph with the given checkpointer."""
    graph = StateGraph(DisputeState, context_schema=WorkflowContext)
    for step in fields(nodes):
        node = getattr(nodes, step.name)
        wrap = traced if step.name == "handle_error" else guarded  # guarded is traced too
        graph.add_node(step.name, wrap(step.name, node))
    graph.add_edge(START, "fetch_data")
    graph.add_conditional_edges("fetch_data", after_fetch)
    graph.add_conditional_edges("validate_dispute", after_validate)
    graph.add_conditional_edges("generate_resolution", after_generate)
    graph.add_conditional_edges("route_review", after_route)
    graph.add_conditional_edges("send_human_review", after_send)
    graph.add_conditional_edges("wait_human_review", after_wait)
    graph.add_conditional_edges("move_money", after_move)
    graph.add_conditional_edges("answer_dispute", after_answer)
    graph.add_conditional_edges("update_case", after_update)
    graph.add_conditional_edges("store_results", after_store)
    graph.add_edge("handle_error", END)
    return graph.compile(checkpointer=checkpointer)
