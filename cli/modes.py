"""The long-running modes: the worker and the API."""

from __future__ import annotations

import asyncio
import logging

from cli.compose import (
    api_server,
    connect_queue,
    escalations,
    make_worker,
    open_core,
    open_workflow,
    stop_on_signals,
)
from services.settings import Settings

log = logging.getLogger("payments_agent")


async def run_worker(settings: Settings) -> int:
    """Consume dispute events and drive runs until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with open_core(settings) as core, open_workflow(core) as workflow:
        queue = connect_queue(settings)
        try:
            log.info("worker consuming %s (%s)", queue.url, queue.describe())
            await asyncio.gather(
                make_worker(workflow, queue).run(stop), escalations(workflow, stop)
            )
        finally:
            queue.close()
    return 0


async def run_api(settings: Settings) -> int:
    """Serve the API and dashboard until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    stop_on_signals(stop)
    async with open_core(settings) as core:
        server = api_server(core)
        serving = asyncio.create_task(server.serve())
        log.info("API on http://%s:%s", settings.api_host, settings.api_port)
        await asyncio.wait(
            [serving, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
        )
        server.should_exit = True
        await serving
    return 0
