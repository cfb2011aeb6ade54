"""Create, revoke and list reviewer API keys.

  python utils/manage_reviewers.py create NAME [--email ADDRESS]   prints the key, once
  python utils/manage_reviewers.py revoke KEY_PREFIX|NAME           a key; by NAME the reviewer
  python utils/manage_reviewers.py list                             keys without secrets

The key authenticates REST calls (`Authorization: Bearer <key>`) and signs in to the
dashboard. Give `--email` the address the reviewer receives review e-mails at: decisions
from those e-mailed links are then recorded under NAME too (one person, one reviewer).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.errors import InvalidRequestError  # noqa: E402
from services.persistence.database import create_engine, open_database, upgrade_schema  # noqa: E402
from services.review.reviewers import ReviewerKeys  # noqa: E402
from services.settings import Settings  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="manage_reviewers.py", description="Create, revoke and list reviewer API keys."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key (shown once)")
    create.add_argument("name", help="the reviewer's name, recorded with each decision")
    create.add_argument("--email", help="the address review e-mails reach this reviewer at")
    revoke = commands.add_parser("revoke", help="revoke by key prefix (pa_xxxxxx) or name")
    revoke.add_argument("selector", metavar="KEY_PREFIX|NAME")
    commands.add_parser("list", help="list keys (prefix, reviewer, e-mail, state)")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    url = settings.postgres_url.get_secret_value() if settings.postgres_url else None
    database = open_database(url, settings.data_dir)
    await asyncio.to_thread(upgrade_schema, database.url)
    engine = create_engine(database)
    keys = ReviewerKeys(engine)
    try:
        if args.command == "create":
            issued = await keys.create(args.name, email=args.email)
            print(f"API key for {issued.reviewer} (shown once; store it now):")
            print(issued.key)
            print(f"prefix {issued.prefix}; revoke with: manage_reviewers.py revoke PREFIX")
            return 0
        if args.command == "revoke":
            count = await keys.revoke(args.selector)
            if count == 0:
                print(f"no active key matches {args.selector}", file=sys.stderr)
                return 1
            print(f"revoked {count} key(s)")
            return 0
        rows = await keys.list()
        if not rows:
            print("no reviewer keys; create one with: manage_reviewers.py create NAME")
        for row in rows:
            state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "active"
            print(
                f"{row['key_prefix']:<10} {row['reviewer']:<24} {row['email'] or '-':<32} "
                f"created {row['created_at']:%Y-%m-%d %H:%M}  {state}"
            )
        return 0
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(run(args, Settings()))
    except InvalidRequestError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
