"""List, show and redrive the dead letters of the dispute queue.

  python utils/dlq.py list [--max N]                 one line per dead-lettered message
  python utils/dlq.py show MESSAGE_ID                its whole body and attributes
  python utils/dlq.py redrive --all | MESSAGE_ID...  back to the dispute queue

The dispute queue is the configured one (as for utils/publish_sqs_message.py: --queue-url,
SQS_QUEUE_URL, else SQS_QUEUE_NAME on SQS_ENDPOINT_URL or on a running worker's embedded
endpoint); its dead-letter queue is the target of its RedrivePolicy.

SQS cannot peek: looking at a message receives it. Messages looked at are hidden for a
few seconds and made visible again at once when the command ends; each look adds one to
a message's receive count (the count shown leaves out the listing's own receive).

A redriven message is sent to the dispute queue, and deleted from the dead-letter queue
only once the send succeeded: a failure between the two leaves it in both queues, and the
worker's intake, keyed by event id, does not start a run twice. SQS's StartMessageMoveTask
is not used: it moves every message (no choice by id), reports no new message ids, and
moto's SQS does not implement it.

Exit codes: 0 done, 1 a message not found or an SQS call failed, 2 a configuration error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.queue import sqs_client  # noqa: E402
from services.settings import Settings  # noqa: E402

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef, MessageTypeDef

# Seconds a looked-at message stays hidden if this script dies before making it visible.
PEEK_VISIBILITY_SECONDS = 30
EXCERPT_CHARS = 60


class ConfigurationError(Exception):
    """The queue or its dead-letter queue cannot be found as configured."""


class OperationError(Exception):
    """A message is not there, or an SQS call failed."""


@dataclass
class Queues:
    client: SQSClient
    main_url: str
    dlq_url: str


def connect(settings: Settings, queue_url: str | None) -> Queues:
    """The dispute queue and its dead-letter queue (found through the RedrivePolicy)."""
    queue_url = queue_url or settings.sqs_queue_url
    endpoint = settings.sqs_endpoint_url
    embedded = queue_url is None and endpoint is None
    if embedded:
        endpoint = f"http://127.0.0.1:{settings.embedded_sqs_port}"
    client: SQSClient = sqs_client(
        region=settings.aws_region, endpoint_url=endpoint, embedded=embedded
    )
    where = endpoint or "AWS"
    try:
        if queue_url is None:
            queue_url = client.get_queue_url(QueueName=settings.sqs_queue_name)["QueueUrl"]
        attributes = client.get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
        ).get("Attributes", {})
    except ClientError as exc:
        raise ConfigurationError(f"queue not found on {where}: {exc}") from exc
    except BotoCoreError as exc:
        hint = " (is a worker or the demo running? else set SQS_QUEUE_URL)" if embedded else ""
        raise ConfigurationError(f"cannot reach SQS at {where}{hint}: {exc}") from exc
    if "RedrivePolicy" not in attributes:
        raise ConfigurationError(f"{queue_url} has no RedrivePolicy, hence no dead-letter queue")
    target = str(json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"])
    # arn:aws:sqs:REGION:ACCOUNT:NAME
    *_, account, name = target.split(":")
    try:
        dlq_url = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    except (ClientError, BotoCoreError) as exc:
        raise ConfigurationError(f"dead-letter queue {target} not found: {exc}") from exc
    return Queues(client, queue_url, dlq_url)


@contextmanager
def peek(
    queues: Queues, *, limit: int | None, hold: int = PEEK_VISIBILITY_SECONDS
) -> Iterator[dict[str, MessageTypeDef]]:
    """Receive up to `limit` dead letters (all when None), by message id; on exit, make
    the ones still in the dead-letter queue (not popped from the dict) visible again."""
    messages: dict[str, MessageTypeDef] = {}
    while limit is None or len(messages) < limit:
        wanted = 10 if limit is None else min(10, limit - len(messages))
        batch = queues.client.receive_message(
            QueueUrl=queues.dlq_url,
            MaxNumberOfMessages=wanted,
            # Long polling asks every SQS server; a short poll may miss messages.
            WaitTimeSeconds=1,
            VisibilityTimeout=hold,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not batch:
            break
        for message in batch:
            messages[message["MessageId"]] = message  # the newest receipt handle wins
    try:
        yield messages
    finally:
        release(queues, list(messages.values()))


def release(queues: Queues, messages: list[MessageTypeDef]) -> None:
    """Make looked-at messages visible again."""
    for start in range(0, len(messages), 10):
        queues.client.change_message_visibility_batch(
            QueueUrl=queues.dlq_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for i, m in enumerate(messages[start : start + 10])
            ],
        )


def sent_at(message: MessageTypeDef) -> str:
    """When the message was first sent (to the dispute queue), in UTC."""
    millis = message.get("Attributes", {}).get("SentTimestamp")
    if millis is None:
        return "-"
    return datetime.fromtimestamp(int(millis) / 1000, UTC).isoformat(timespec="seconds")


def receives(message: MessageTypeDef) -> int:
    """Receives so far, leaving out this command's own."""
    return int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1")) - 1


def event_fields(body: str) -> dict[str, Any]:
    """The event's fields when the body is a JSON object, else nothing."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def summary(message: MessageTypeDef) -> str:
    body = message.get("Body", "")
    event = event_fields(body)
    excerpt = " ".join(body.split())
    if len(excerpt) > EXCERPT_CHARS:
        excerpt = excerpt[: EXCERPT_CHARS - 1] + "…"
    return (
        f"{message['MessageId']}  receives={receives(message)}  sent={sent_at(message)}  "
        f"event={event.get('event_id') or '-'}  case={event.get('case_id') or '-'}  {excerpt}"
    )


def list_messages(queues: Queues, *, limit: int) -> int:
    waiting = queues.client.get_queue_attributes(
        QueueUrl=queues.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    with peek(queues, limit=limit) as messages:
        print(f"{queues.dlq_url}: {len(messages)} message(s) (about {waiting} waiting)")
        for message in sorted(messages.values(), key=lambda m: sent_at(m)):
            print(summary(message))
        if len(messages) == limit:
            print(f"(the first {limit}; --max N for more)")
    return 0


def show(queues: Queues, message_id: str) -> int:
    with peek(queues, limit=None) as messages:
        message = messages.get(message_id)
        if message is None:
            raise OperationError(f"{message_id} is not in {queues.dlq_url}")
        body = message.get("Body", "")
        print(f"MessageId: {message_id}")
        print(f"Receives: {receives(message)} (before this look)")
        print(f"Sent: {sent_at(message)}")
        for key, value in sorted(message.get("Attributes", {}).items()):
            print(f"Attribute {key}: {value}")
        for name, attribute in sorted(message.get("MessageAttributes", {}).items()):
            print(f"MessageAttribute {name}: {attribute.get('StringValue', attribute)}")
        print("Body:")
        try:
            print(json.dumps(json.loads(body), indent=2, ensure_ascii=False))
        except ValueError:
            print(body)
    return 0


def message_attributes(message: MessageTypeDef) -> dict[str, MessageAttributeValueTypeDef]:
    """The message attributes as SendMessage takes them."""
    keys = ("DataType", "StringValue", "BinaryValue")
    return {
        name: {k: v for k, v in value.items() if k in keys}  # type: ignore[misc]
        for name, value in message.get("MessageAttributes", {}).items()
    }


def redrive(queues: Queues, message_ids: list[str]) -> int:
    """Send the messages (all when `message_ids` is empty) back, then delete them here."""
    with peek(queues, limit=None) as messages:
        missing = [m for m in message_ids if m not in messages]
        if missing:
            raise OperationError(
                f"not in {queues.dlq_url}: {', '.join(missing)} (nothing was redriven)"
            )
        chosen = message_ids or sorted(messages, key=lambda m: sent_at(messages[m]))
        for message_id in chosen:
            message = messages[message_id]
            sent = queues.client.send_message(
                QueueUrl=queues.main_url,
                MessageBody=message.get("Body", ""),
                MessageAttributes=message_attributes(message),
            )
            # Only now: a failed send above leaves the message here (made visible again).
            queues.client.delete_message(
                QueueUrl=queues.dlq_url, ReceiptHandle=message["ReceiptHandle"]
            )
            del messages[message_id]
            print(f"redrove {message_id} as {sent['MessageId']}")
        print(f"{len(chosen)} message(s) back on {queues.main_url}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="dlq.py", description="List, show and redrive the dispute queue's dead letters."
    )
    parser.add_argument("--queue-url", help="the dispute queue (default: settings)")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="one line per dead-lettered message")
    listing.add_argument("--max", type=int, default=100, help="at most N messages (100)")
    one = commands.add_parser("show", help="a message's whole body and attributes")
    one.add_argument("message_id")
    back = commands.add_parser("redrive", help="send messages back to the dispute queue")
    which = back.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every dead-lettered message")
    which.add_argument("message_ids", nargs="*", default=[], metavar="MESSAGE_ID")
    args = parser.parse_args(argv)
    if args.command == "list" and args.max < 1:
        parser.error("--max must be at least 1")
    return args


def main(argv: list[str] | None = None, *, settings: Settings | None = None) -> int:
    """Run one command; configuration errors are one line and exit code 2."""
    args = parse_args(argv)
    try:
        queues = connect(settings or Settings(), args.queue_url)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        print(f"configuration error: {problems}", file=sys.stderr)
        return 2
    except ConfigurationError as exc:
        print(f"configuration error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    try:
        if args.command == "list":
            return list_messages(queues, limit=args.max)
        if args.command == "show":
            return show(queues, args.message_id)
        return redrive(queues, [] if args.all else args.message_ids)
    except OperationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError) as exc:
        print(f"error: SQS call failed: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
