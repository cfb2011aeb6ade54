"""PaymentsAgent: the entry point. It parses the command line, reads the settings, and
starts the chosen mode from cli/ (where the composition root, cli/compose.py, builds the
adapters and the graph). Modes are imported only once chosen, so `--help` is instant.

  python app.py                      the worker: consume dispute events, resume decisions
  python app.py --api | --server     the API and dashboard on port 8003
  python app.py --demo               everything in one process on embedded defaults
  python app.py CASE_ID [CUSTOMER]   one run in the foreground, stopping at review
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Any


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The mode and its arguments."""
    parser = argparse.ArgumentParser(
        prog="app.py",
        description="PaymentsAgent: billing dispute resolution with human review.",
        epilog="Without arguments: the worker. Settings come from the environment and .env "
        "(see .env.example).",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--api", "--server", action="store_true", help="serve the API on port 8003")
    mode.add_argument(
        "--demo", action="store_true", help="worker + API + sample disputes, embedded defaults"
    )
    parser.add_argument("case_id", nargs="?", help="run one case in the foreground")
    parser.add_argument("customer_id", nargs="?", help="the customer id (informational)")
    return parser.parse_args(argv)


def choose_mode(args: argparse.Namespace, settings: Any) -> Coroutine[Any, Any, int]:
    """The coroutine of the chosen mode (its modules imported only now)."""
    if args.demo:
        from cli.demo import run_demo

        return run_demo(settings)
    if args.api:
        from cli.modes import run_api

        return run_api(settings)
    if args.case_id:
        from cli.single_case import run_single

        return run_single(settings, args.case_id, args.customer_id)
    from cli.modes import run_worker

    return run_worker(settings)


# Settings whose values are never echoed in an error line (they may hold credentials).
_UNSHOWN = ("KEY", "TOKEN", "SECRET", "PASSWORD", "URL")


def settings_problems(exc: Any) -> str:
    """A pydantic ValidationError of Settings as one line: each variable, what is wrong."""
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error.get("loc", ())]
        name = ".".join([loc[0].upper(), *loc[1:]]) if loc else "settings"
        value = error.get("input")
        shown = (
            f"={value!r}"
            if isinstance(value, str | int | float)
            and len(str(value)) <= 60
            and not any(word in name for word in _UNSHOWN)
            else ""
        )
        problems.append(f"{name}{shown}: {error.get('msg', 'invalid')}")
    return "; ".join(problems) + "; correct it in .env or the environment (see .env.example)"


def fail(line: str) -> int:
    """A start-up failure: one line on stderr, exit code 2."""
    print(" ".join(line.split()), file=sys.stderr, flush=True)
    return 2


async def interruptible(mode: Coroutine[Any, Any, int]) -> int:
    """Run `mode`. Until it installs its own handlers (once started: cli.compose's
    stop_on_signals), SIGINT or SIGTERM cancels it, whatever it is waiting on; a second
    signal ends the process at once."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[int] = []

    def on_signal(sig: int) -> None:
        if received:
            print("Second signal: stopping at once.", file=sys.stderr, flush=True)
            os._exit(128 + sig)
        received.append(sig)
        if task is not None:
            task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await mode
    except asyncio.CancelledError:
        if not received:
            raise
        print(f"Stopped by {signal.Signals(received[0]).name}.", file=sys.stderr, flush=True)
        return 128 + received[0]


def _interrupt(sig: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the chosen mode; Ctrl-C or SIGTERM at any moment stops it."""
    # Until the event loop takes the signals over, SIGTERM stops the process as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return start(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr, flush=True)
        return 130


def start(argv: list[str]) -> int:
    """Start the chosen mode. A start-up or configuration failure (a bad setting, a port in
    use, PostgreSQL unreachable, a demo already running) is one line naming the fix on
    stderr and exit code 2; anything else is a defect, with its traceback."""
    args = parse_args(argv)
    from pydantic import ValidationError

    from services.settings import ConfigurationError, Settings, StartupError

    try:
        if args.demo:
            from cli.demo import DEMO_OVERRIDES, hold_demo_lock

            settings = Settings(**DEMO_OVERRIDES)
        else:
            settings = Settings()
        settings.check_backends()
        if args.demo:
            # Before anything starts; held until this process ends, however it ends.
            hold_demo_lock(settings)
    except ValidationError as exc:
        return fail(f"configuration error: {settings_problems(exc)}")
    except StartupError as exc:
        return fail(f"cannot start: {exc}")
    except ConfigurationError as exc:
        return fail(f"configuration error: {exc}")
    except OSError as exc:
        return fail(f"cannot start: {exc.filename or 'DATA_DIR'}: {exc.strerror}; check DATA_DIR")

    from services.errors import PaymentsAgentError
    from services.logs import configure_logging

    try:
        configure_logging(
            settings.log_dir,
            settings.log_level,
            console=not args.demo,
            log_format=settings.log_format,
        )
    except (OSError, ValueError) as exc:
        return fail(f"cannot start: cannot set up logging ({exc}); check LOG_DIR and LOG_LEVEL")
    try:
        # uvloop: the event loop in C; a worker spends about a fifth of its CPU in the loop.
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(interruptible(choose_mode(args, settings)))
    except StartupError as exc:
        return fail(f"cannot start: {exc}")
    except ConfigurationError as exc:
        return fail(f"configuration error: {exc}")
    except PaymentsAgentError as exc:
        return fail(f"cannot start: {exc.message}")


if __name__ == "__main__":
    sys.exit(main())
