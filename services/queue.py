"""The dispute queue: an SQS client, and the embedded SQS endpoint used when none is set."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3

log = logging.getLogger(__name__)

# Credentials for the embedded endpoint only; it checks none. Real queues use boto3's chain.
_EMBEDDED_KEY = "embedded"


@dataclass
class DisputeQueue:
    client: Any
    url: str
    endpoint_url: str | None
    embedded_server: Any = None

    def describe(self) -> str:
        return "embedded" if self.embedded_server is not None else (self.endpoint_url or "aws")

    def publish(self, *, case_id: str, customer_id: str | None = None) -> str:
        """Publish one dispute.created event; returns its event_id."""
        event_id = f"evt_{uuid.uuid4().hex}"
        body = {
            "type": "dispute.created",
            "event_id": event_id,
            "case_id": case_id,
            "customer_id": customer_id,
            "occurred_at": datetime.now(UTC).isoformat(),
        }
        self.client.send_message(QueueUrl=self.url, MessageBody=json.dumps(body))
        return event_id

    def close(self) -> None:
        if self.embedded_server is not None:
            self.embedded_server.stop()


def sqs_client(*, region: str, endpoint_url: str | None, embedded: bool = False) -> Any:
    return boto3.client(
        "sqs",
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=_EMBEDDED_KEY if embedded else None,
        aws_secret_access_key=_EMBEDDED_KEY if embedded else None,
    )


def ensure_queue(client: Any, *, name: str, max_receive_count: int, visibility: int) -> str:
    """Create the queue and its dead-letter queue (idempotent); return the queue URL."""
    dlq_url = client.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count})
    attributes = {"RedrivePolicy": redrive, "VisibilityTimeout": str(visibility)}
    try:
        return str(client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
    except client.exceptions.QueueNameExists:
        # The queue exists with other attributes (settings changed): bring them up to date.
        url = str(client.get_queue_url(QueueName=name)["QueueUrl"])
        client.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        return url


def open_queue(
    *,
    region: str,
    queue_url: str | None,
    endpoint_url: str | None,
    queue_name: str,
    max_receive_count: int,
    visibility: int,
    embedded_port: int,
) -> DisputeQueue:
    """Connect to the configured queue, or start the embedded SQS endpoint on loopback."""
    if queue_url:
        return DisputeQueue(
            sqs_client(region=region, endpoint_url=endpoint_url), queue_url, endpoint_url
        )
    server = None
    embedded = endpoint_url is None
    if embedded:
        from moto.server import ThreadedMotoServer  # only the embedded default needs it

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=embedded_port, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        endpoint_url = f"http://{host}:{port}"
        log.info(
            "embedded SQS endpoint on %s (messages live as long as this process)", endpoint_url
        )
    client = sqs_client(region=region, endpoint_url=endpoint_url, embedded=embedded)
    url = ensure_queue(
        client, name=queue_name, max_receive_count=max_receive_count, visibility=visibility
    )
    return DisputeQueue(client, url, endpoint_url, server)


class QueueSender:
    """Sends message bodies to the dispute queue from a process that does not consume it
    (the API's Stripe webhook). The queue is SQS_QUEUE_URL, else the queue named
    SQS_QUEUE_NAME at SQS_ENDPOINT_URL, else at the embedded endpoint a worker or the demo
    runs on `embedded_port`; it is looked up at the first send, so the API can start first.
    """

    def __init__(
        self,
        *,
        region: str,
        queue_url: str | None,
        endpoint_url: str | None,
        queue_name: str,
        embedded_port: int,
    ) -> None:
        embedded = queue_url is None and endpoint_url is None
        self._endpoint = endpoint_url or (f"http://127.0.0.1:{embedded_port}" if embedded else None)
        self._client = sqs_client(region=region, endpoint_url=self._endpoint, embedded=embedded)
        self._url = queue_url
        self._name = queue_name

    def _send(self, body: str) -> None:
        if self._url is None:
            self._url = self._client.get_queue_url(QueueName=self._name)["QueueUrl"]
        self._client.send_message(QueueUrl=self._url, MessageBody=body)

    async def send(self, body: str) -> None:
        await asyncio.to_thread(self._send, body)
