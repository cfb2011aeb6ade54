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


def main(argv: list[str] | None = None) -> int:
    """Run the chosen mode; configuration errors are one line and exit code 2."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from services.errors import PaymentsAgentError
    from services.logs import configure_logging
    from services.settings import ConfigurationError, Settings

    try:
        if args.demo:
            from cli.demo import DEMO_OVERRIDES

            settings = Settings(**DEMO_OVERRIDES)
        else:
            settings = Settings()
        settings.check_backends()
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_dir, settings.log_level, console=not args.demo)
    try:
        # uvloop: the event loop in C; a worker spends about a fifth of its CPU in the loop.
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(choose_mode(args, settings))
    except ConfigurationError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except PaymentsAgentError as exc:
        print(f"cannot start: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
