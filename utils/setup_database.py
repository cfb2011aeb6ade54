"""Create, reset or check the PaymentsAgent schema (Alembic migrations).

python utils/setup_database.py           apply pending migrations
python utils/setup_database.py --reset   drop everything (runs, checkpoints) and re-create
python utils/setup_database.py --check   exit 1 unless the schema is at the latest revision
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.persistence.database import open_database, reset_schema, schema_status, upgrade_schema  # noqa: E402
from services.settings import Settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--reset", action="store_true", help="drop all data and re-create")
    group.add_argument("--check", action="store_true", help="verify the schema is current")
    args = parser.parse_args(argv)
    settings = Settings()
    url = settings.postgres_url.get_secret_value() if settings.postgres_url else None
    database = open_database(url, settings.data_dir)
    where = "embedded PostgreSQL" if database.embedded else "POSTGRES_URL"
    if args.check:
        current, head = schema_status(database.url)
        print(f"{where}: schema at {current or 'nothing'}, latest {head}")
        return 0 if current == head else 1
    if args.reset:
        reset_schema(database.url)
        print(f"{where}: schema reset to {schema_status(database.url)[1]}")
        return 0
    upgrade_schema(database.url)
    print(f"{where}: schema at {schema_status(database.url)[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
