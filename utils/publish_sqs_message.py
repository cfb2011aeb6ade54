"""Publish dispute.created events to the dispute queue.

  python utils/publish_sqs_message.py                      every open sandbox case, once
  python utils/publish_sqs_message.py --case-id 500… [--count N]  N events for one case
  python utils/publish_sqs_message.py --queue-url URL      another queue

Without --queue-url the configured SQS_QUEUE_URL is used, else the embedded endpoint of a
running worker or demo (SQS_ENDPOINT_URL, default http://127.0.0.1:9324). Each event has an
event id of its own; --count N publishes N of them per case.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from botocore.exceptions import BotoCoreError, ClientError  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from services.queue import DisputeQueue, sqs_client  # noqa: E402
from services.sandbox.data import load_dataset  # noqa: E402
from services.settings import Settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Publish dispute.created events.")
    parser.add_argument("--case-id", help="the CRM case id (default: every open sandbox case)")
    parser.add_argument("--customer-id", help="customer id to put in the event (informational)")
    parser.add_argument(
        "--count",
        type=int,
        default=1,
        help="events per case, each with its own event id (default 1)",
    )
    parser.add_argument("--queue-url", help="queue URL (default: settings, else embedded)")
    args = parser.parse_args(argv)
    if args.count < 1:
        parser.error("--count must be at least 1")
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        )
        print(f"configuration error: {problems} (in .env or the environment)", file=sys.stderr)
        return 2
    queue_url = args.queue_url or settings.sqs_queue_url
    endpoint = settings.sqs_endpoint_url
    embedded = queue_url is None and endpoint is None
    if embedded:
        endpoint = f"http://127.0.0.1:{settings.embedded_sqs_port}"
    client = sqs_client(region=settings.aws_region, endpoint_url=endpoint, embedded=embedded)
    if queue_url is None:
        try:
            queue_url = client.get_queue_url(QueueName=settings.sqs_queue_name)["QueueUrl"]
        except (BotoCoreError, ClientError) as exc:
            hint = (
                " (no worker or demo is running: start one, `uv run python app.py` or "
                "`uv run python app.py --demo`, or set SQS_QUEUE_URL)"
                if embedded
                else " (check SQS_ENDPOINT_URL and SQS_QUEUE_NAME)"
            )
            print(
                f"configuration error: no queue {settings.sqs_queue_name} at {endpoint}{hint}: "
                f"{' '.join(str(exc).split())}",
                file=sys.stderr,
            )
            return 2
    queue = DisputeQueue(client, queue_url, endpoint)
    cases = (
        [args.case_id]
        if args.case_id
        else [c.case_id for c in load_dataset(datetime.now(UTC)).open_cases()]
    )
    for case_id in cases:
        for _ in range(args.count):
            try:
                event_id = queue.publish(case_id=case_id, customer_id=args.customer_id)
            except (BotoCoreError, ClientError) as exc:
                print(
                    f"cannot publish to {queue_url}: {' '.join(str(exc).split())} (check "
                    "SQS_QUEUE_URL and the AWS credentials, or --queue-url)",
                    file=sys.stderr,
                )
                return 2
            print(f"published {event_id} for case {case_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
