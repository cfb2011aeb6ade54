"""The long-running modes: the worker and the API."""

from __future__ import annotations

import asyncio
import logging

from cli.compose import (
    api_server,
    api_socket,
    check_queue_port,
    connect_queue,
    describe_database,
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
    check_queue_port(settings)
    async with open_core(settings) as core, open_workflow(core) as workflow:
        queue = await asyncio.to_thread(connect_queue, settings)
        try:
            stop_on_signals(stop)
            log.info(
                "worker consuming %s (%s); database %s; drafter %s",
                queue.url,
                queue.describe(),
                describe_database(core.database),
                core.drafter_status.describe(),
            )
            await asyncio.gather(
                make_worker(workflow, queue).run(stop), escalations(workflow, stop)
            )
        finally:
            queue.close()
    return 0


async def run_api(settings: Settings) -> int:
    """Serve the API and dashboard until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    sock = api_socket(settings)
    try:
        async with open_core(settings) as core:
            server = api_server(core)
            serving = asyncio.create_task(server.serve(sockets=[sock]))
            stop_on_signals(stop)
            log.info(
                "API on http://%s:%s; database %s; drafter %s",
                settings.api_host,
                settings.api_port,
                describe_database(core.database),
                core.drafter_status.describe(),
            )
            await asyncio.wait(
                [serving, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED
            )
            server.should_exit = True
            await serving
    finally:
        sock.close()
    return 0
