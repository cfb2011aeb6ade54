"""FastAPI dependencies: everything a route needs, from the app's composed services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request

from services.store import WorkflowStore


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ApiServices:
    """What the composition root hands to the API."""

    store: WorkflowStore
    backends: dict[str, str]
    clock: Callable[[], datetime] = _utc_now
    extras: dict[str, Any] = field(default_factory=dict)


def get_services(request: Request) -> ApiServices:
    services: ApiServices = request.app.state.services
    return services


def get_store(services: Annotated[ApiServices, Depends(get_services)]) -> WorkflowStore:
    return services.store


Services = Annotated[ApiServices, Depends(get_services)]
Store = Annotated[WorkflowStore, Depends(get_store)]
