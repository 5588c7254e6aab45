"""The events a function receives, in the shapes Lambda sends for each kind of source. Pure.

- SQS: `{"Records": [...]}` exactly as Lambda's SQS event (messageId, receiptHandle, body,
  attributes, messageAttributes, md5OfBody, eventSource `aws:sqs`, eventSourceARN, awsRegion).
- Kafka: the self-managed Kafka event (`eventSource: SelfManagedKafka`, `bootstrapServers`,
  `records` keyed by `topic-partition`, base64 key and value, headers as byte lists).
- RabbitMQ: Amazon MQ's event (`eventSource: aws:rmq`, `rmqMessagesByQueue` keyed by
  `queue::vhost`, basicProperties, redelivered, base64 data), plus each message's
  `deliveryTag`, the identifier ReportBatchItemFailures uses when there is no messageId.
- Redis Streams and NATS JetStream: kubelambda's shape modelled on Kinesis's (`Records[]` with
  eventSource `kubelambda:redis` / `kubelambda:nats`, eventID, and under `redis` / `nats` the
  base64 `data`, the `sequenceNumber` and `approximateArrivalTimestamp`); docs/event-sources.md.
- Schedules: EventBridge's Scheduled Event, or the mapping's constant `input`.

Each `*_record` returns the record as it sits in the event and the view filters match against
(the record's metadata with the payload parsed, as Lambda filters do). The view is worked out
only when a mapping has filters: parsing every payload would cost more than the rest of the
record's way through the poller.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from kubelambda.api.common import is_digits
from kubelambda.sources.filters import filter_view

ACCOUNT = "000000000000"


@dataclass(frozen=True)
class Shaped:
    record: dict[str, Any]  # as in the event
    metadata: dict[str, Any]  # the part of it (or of its inner object) that filters see ...
    key: str  # ... with the payload under this key ...
    raw: bytes | str | None  # ... parsed from this, when there is one

    @cached_property
    def view(self) -> dict[str, Any]:
        """What filters see: the metadata without the encoded payload, plus the payload parsed."""
        meta = {k: v for k, v in self.metadata.items() if k != self.key}
        return meta if self.raw is None else filter_view(meta, self.key, self.raw)


def b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def iso(epoch_seconds: float) -> str:
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- SQS -------------------------------------------------------------------------------------


def sqs_queue_arn(queue_url: str, region: str) -> str:
    parts = queue_url.rstrip("/").split("/")
    account = parts[-2] if len(parts) >= 2 and is_digits(parts[-2]) else ACCOUNT
    return f"arn:aws:sqs:{region}:{account}:{parts[-1]}"


def _sqs_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    # Blobs arrive as bytes from botocore's parser, as base64 text from the raw JSON answer.
    binary = value.get("BinaryValue")
    return {
        "stringValue": value.get("StringValue"),
        "binaryValue": b64(binary) if isinstance(binary, bytes) else binary,
        "stringListValues": list(value.get("StringListValues", [])),
        "binaryListValues": [
            b64(v) if isinstance(v, bytes) else v for v in value.get("BinaryListValues", [])
        ],
        "dataType": value.get("DataType", "String"),
    }


def sqs_record(message: Mapping[str, Any], arn: str, region: str) -> Shaped:
    """From one message of botocore's ReceiveMessage answer."""
    body: str = message.get("Body", "")
    record = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: _sqs_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }
    return Shaped(record, record, "body", body)


def records_event(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {"Records": list(records)}


# --- Kafka -----------------------------------------------------------------------------------


def kafka_record(
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    key: bytes | None,
    value: bytes | None,
    headers: Sequence[tuple[str, bytes]],
    timestamp_type: str = "CREATE_TIME",
) -> Shaped:
    record = {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp": timestamp_ms,
        "timestampType": timestamp_type,
        "key": b64(key),
        "value": b64(value),
        "headers": [{name: list(data or b"")} for name, data in headers],
    }
    return Shaped(record, record, "value", value)


def kafka_event(bootstrap: Sequence[str], records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(f"{record['topic']}-{record['partition']}", []).append(record)
    return {
        "eventSource": "SelfManagedKafka",
        "bootstrapServers": ",".join(bootstrap),
        "records": grouped,
    }


# --- RabbitMQ --------------------------------------------------------------------------------


def _rmq_header(value: Any) -> Any:
    if isinstance(value, str):
        return {"bytes": list(value.encode())}
    if isinstance(value, bytes):
        return {"bytes": list(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _rmq_header(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rmq_header(v) for v in value]
    return value


def rmq_record(
    body: bytes,
    properties: Mapping[str, Any],
    redelivered: bool,
    delivery_tag: int,
) -> Shaped:
    """`properties` holds AMQP basic properties by their camelCase names (None when unset)."""
    stamp = properties.get("timestamp")
    basic = {
        "contentType": properties.get("contentType"),
        "contentEncoding": properties.get("contentEncoding"),
        "headers": _rmq_header(dict(properties.get("headers") or {})),
        "deliveryMode": properties.get("deliveryMode"),
        "priority": properties.get("priority"),
        "correlationId": properties.get("correlationId"),
        "replyTo": properties.get("replyTo"),
        "expiration": properties.get("expiration"),
        "messageId": properties.get("messageId"),
        "timestamp": stamp.strftime("%b %d, %Y, %I:%M:%S %p")
        if isinstance(stamp, datetime)
        else stamp,
        "type": properties.get("type"),
        "userId": properties.get("userId"),
        "appId": properties.get("appId"),
        "clusterId": properties.get("clusterId"),
        "bodySize": len(body),
    }
    record = {
        "basicProperties": basic,
        "redelivered": redelivered,
        "data": b64(body),
        "deliveryTag": delivery_tag,
    }
    return Shaped(record, record, "data", body)


def rmq_event(
    queue: str, vhost: str, arn: str, messages: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "eventSource": "aws:rmq",
        "eventSourceArn": arn,
        "rmqMessagesByQueue": {f"{queue}::{vhost}": list(messages)},
    }


# --- Redis Streams and NATS JetStream (Kinesis-like) -----------------------------------------


def stream_arn(kind: str, region: str, name: str) -> str:
    return f"arn:kubelambda:{kind}:{region}:{ACCOUNT}:stream/{name}"


End = tuple[str, float]  # a record's id and its arrival (epoch seconds)


def stream_batch_info(
    kind: str, region: str, stream: str, first: End, last: End, size: int
) -> dict[str, Any]:
    """The onFailure record's batch info for a Redis or NATS stream: (id, arrival) of the ends."""
    return {
        "stream": stream,
        "startSequenceNumber": first[0],
        "endSequenceNumber": last[0],
        "approximateArrivalOfFirstRecord": first[1],
        "approximateArrivalOfLastRecord": last[1],
        "batchSize": size,
        "streamArn": stream_arn(kind, region, stream),
    }


def _kinesis_like(
    kind: str,
    region: str,
    stream: str,
    sequence: str,
    data: bytes,
    arrived: float,
    extra: dict[str, Any],
) -> Shaped:
    inner = {
        "stream": stream,
        "sequenceNumber": sequence,
        "data": b64(data),
        "approximateArrivalTimestamp": round(arrived, 3),
        **extra,
    }
    record = {
        "eventSource": f"kubelambda:{kind}",
        "eventSourceARN": stream_arn(kind, region, stream),
        "eventID": f"{stream}:{sequence}",
        "eventName": f"kubelambda:{kind}:record",
        "eventVersion": "1.0",
        "awsRegion": region,
        kind: inner,
    }
    return Shaped(record, inner, "data", data)


def redis_record(
    region: str,
    stream: str,
    entry_id: str,
    fields: Mapping[bytes, bytes],
    deliveries: int = 1,
) -> Shaped:
    """The payload is the `data` field when the entry has one, else its fields as JSON."""
    text = {_text(k): _text(v) for k, v in fields.items()}
    data = fields.get(b"data")
    if data is None:
        data = json.dumps(text, separators=(",", ":")).encode()
    millis = entry_id.split("-", 1)[0]
    arrived = int(millis) / 1000 if is_digits(millis) else 0.0
    return _kinesis_like(
        "redis",
        region,
        stream,
        entry_id,
        data,
        arrived,
        {"fields": text, "deliveryCount": deliveries},
    )


def _text(value: bytes) -> str:
    return value.decode(errors="replace")


def nats_record(
    region: str,
    stream: str,
    subject: str,
    sequence: int,
    data: bytes,
    arrived: float,
    headers: Mapping[str, Sequence[str]] | None,
    deliveries: int,
) -> Shaped:
    extra = {
        "subject": subject,
        "headers": {k: list(v) for k, v in (headers or {}).items()},
        "deliveryCount": deliveries,
    }
    return _kinesis_like("nats", region, stream, str(sequence), data, arrived, extra)


# --- Schedules -------------------------------------------------------------------------------


def scheduled_event(
    rule: str, region: str, fired_at: float, constant: str | None, event_id: str | None = None
) -> bytes:
    """EventBridge's Scheduled Event for a tick, or the constant input when one is set."""
    if constant is not None:
        return constant.encode()
    event = {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": iso(fired_at).replace(".000Z", "Z"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{ACCOUNT}:rule/{rule}"],
        "detail": {},
    }
    return json.dumps(event).encode()


# --- onFailure records for streams ------------------------------------------------------------


def stream_failure_record(
    *,
    function_arn: str,
    condition: str,
    attempts: int,
    info_key: str,
    info: dict[str, Any],
    status: int | None,
    function_error: str | None,
    executed_version: str | None,
    now: float,
) -> dict[str, Any]:
    """Lambda's onFailure record for a stream batch (Kinesis's `KinesisBatchInfo` pattern)."""
    response: dict[str, Any] = {}
    if status is not None:
        response = {"statusCode": status, "executedVersion": executed_version or "$LATEST"}
        if function_error:
            response["functionError"] = function_error
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": attempts,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": iso(now),
        info_key: info,
    }
