"""The graph's nodes, one module each; `NODES` hands them to workflows.build_graph."""

from agents.answer_dispute import answer_dispute
from agents.fetch_data import fetch_data
from agents.generate_resolution import generate_resolution
from agents.handle_error import handle_error
from agents.move_money import move_money
from agents.route_review import route_review
from agents.send_human_review import send_human_review
from agents.store_results import store_results
from agents.update_case import update_case
from agents.validate_dispute import validate_dispute
from agents.wait_human_review import wait_human_review
from workflows.dispute_workflow import GraphNodes

NODES = GraphNodes(
    fetch_data=fetch_data,
    validate_dispute=validate_dispute,
    generate_resolution=generate_resolution,
    route_review=route_review,
    send_human_review=send_human_review,
    wait_human_review=wait_human_review,
    move_money=move_money,
    answer_dispute=answer_dispute,
    update_case=update_case,
    store_results=store_results,
    handle_error=handle_error,
)

__all__ = ["NODES"]
