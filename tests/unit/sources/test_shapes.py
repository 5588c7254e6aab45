"""The events' shapes match what Lambda sends for each kind of source."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

from kubelambda.sources import shapes


def test_sqs_record_is_lambdas() -> None:
    message = {
        "MessageId": "id-1",
        "ReceiptHandle": "rh",
        "Body": '{"type": "order"}',
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1700000000000"},
        "MessageAttributes": {
            "color": {"StringValue": "red", "DataType": "String"},
            "blob": {"BinaryValue": b"\x01\x02", "DataType": "Binary"},
        },
    }
    arn = shapes.sqs_queue_arn("http://127.0.0.1:9324/000000000000/orders", "eu-west-1")
    assert arn == "arn:aws:sqs:eu-west-1:000000000000:orders"
    shaped = shapes.sqs_record(message, arn, "eu-west-1")
    record = shaped.record
    assert set(record) == {
        "messageId",
        "receiptHandle",
        "body",
        "attributes",
        "messageAttributes",
        "md5OfBody",
        "eventSource",
        "eventSourceARN",
        "awsRegion",
    }
    assert record["eventSource"] == "aws:sqs"
    assert record["md5OfBody"] == hashlib.md5(b'{"type": "order"}').hexdigest()
    assert record["messageAttributes"]["color"] == {
        "stringValue": "red",
        "binaryValue": None,
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert record["messageAttributes"]["blob"]["binaryValue"] == "AQI="
    assert shaped.view["body"] == {"type": "order"}
    assert shaped.view["messageId"] == "id-1"
    assert shapes.records_event([record]) == {"Records": [record]}


def test_kafka_event_groups_by_topic_partition() -> None:
    a = shapes.kafka_record("clicks", 0, 5, 1700, b"k", b'{"n": 1}', [("h", b"v")])
    b = shapes.kafka_record("clicks", 1, 9, 1701, None, b"raw", [])
    event = shapes.kafka_event(["b1:9092", "b2:9092"], [a.record, b.record])
    assert event["eventSource"] == "SelfManagedKafka"
    assert event["bootstrapServers"] == "b1:9092,b2:9092"
    assert list(event["records"]) == ["clicks-0", "clicks-1"]
    rec = event["records"]["clicks-0"][0]
    assert rec["key"] == "aw==" and base64.b64decode(rec["value"]) == b'{"n": 1}'
    assert rec["headers"] == [{"h": [118]}] and rec["timestampType"] == "CREATE_TIME"
    assert a.view["value"] == {"n": 1} and b.view["value"] == "raw"
    assert event["records"]["clicks-1"][0]["key"] is None


def test_rabbitmq_event_is_amazon_mqs() -> None:
    props = {"contentType": "application/json", "headers": {"h": "x", "n": 3}, "messageId": "m"}
    shaped = shapes.rmq_record(b'{"type": "order"}', props, redelivered=False, delivery_tag=7)
    event = shapes.rmq_event("jobs", "/", "arn:aws:mq:us-east-1:0:broker:b", [shaped.record])
    assert event["eventSource"] == "aws:rmq"
    message = event["rmqMessagesByQueue"]["jobs::/"][0]
    assert message["basicProperties"]["headers"] == {"h": {"bytes": [120]}, "n": 3}
    assert message["basicProperties"]["bodySize"] == 17
    assert message["deliveryTag"] == 7 and message["redelivered"] is False
    assert shaped.view["data"] == {"type": "order"}


def test_redis_record_is_kinesis_like() -> None:
    shaped = shapes.redis_record("us-east-1", "events", "1700000000123-0", {b"data": b'{"a":1}'})
    rec = shaped.record
    assert rec["eventSource"] == "kubelambda:redis"
    assert rec["eventID"] == "events:1700000000123-0"
    inner = rec["redis"]
    assert inner["sequenceNumber"] == "1700000000123-0"
    assert inner["approximateArrivalTimestamp"] == 1700000000.123
    assert base64.b64decode(inner["data"]) == b'{"a":1}'
    assert shaped.view["data"] == {"a": 1}
    other = shapes.redis_record("us-east-1", "events", "1-0", {b"type": b"order", b"n": b"2"})
    assert json.loads(base64.b64decode(other.record["redis"]["data"])) == {
        "type": "order",
        "n": "2",
    }


def test_nats_record_is_kinesis_like() -> None:
    shaped = shapes.nats_record(
        "us-east-1", "AUDIT", "audit.login", 42, b"hi", 1700000000.5, {"X": ["1"]}, deliveries=2
    )
    inner = shaped.record["nats"]
    assert inner["sequenceNumber"] == "42" and inner["subject"] == "audit.login"
    assert inner["headers"] == {"X": ["1"]} and inner["deliveryCount"] == 2
    assert shaped.view["subject"] == "audit.login" and shaped.view["data"] == "hi"


def test_scheduled_event_is_eventbridges_or_the_constant_input() -> None:
    at = datetime(2024, 1, 2, 8, 0, tzinfo=UTC).timestamp()
    event = json.loads(shapes.scheduled_event("hello-morning", "us-east-1", at, None, "e1"))
    assert event == {
        "version": "0",
        "id": "e1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": "2024-01-02T08:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:000000000000:rule/hello-morning"],
        "detail": {},
    }
    assert shapes.scheduled_event("r", "us-east-1", at, '{"name": "team"}') == b'{"name": "team"}'


def test_stream_failure_record_has_lambdas_keys() -> None:
    record = shapes.stream_failure_record(
        function_arn="arn:aws:lambda:us-east-1:000000000000:function:default.f",
        condition="RetryAttemptsExhausted",
        attempts=3,
        info_key="KafkaBatchInfo",
        info={"batchSize": 1},
        status=200,
        function_error="Unhandled",
        executed_version="1",
        now=0,
    )
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "1",
        "functionError": "Unhandled",
    }
    assert record["version"] == "1.0" and record["KafkaBatchInfo"] == {"batchSize": 1}
    assert record["timestamp"] == "1970-01-01T00:00:00.000Z"


def test_stream_batch_info_names_both_ends_of_the_batch() -> None:
    from kubelambda.sources.shapes import stream_batch_info

    info = stream_batch_info("redis", "eu-west-1", "orders", ("1-0", 10.0), ("5-0", 12.5), 3)
    assert info["startSequenceNumber"] == "1-0" and info["endSequenceNumber"] == "5-0"
    assert info["approximateArrivalOfFirstRecord"] == 10.0
    assert info["approximateArrivalOfLastRecord"] == 12.5
    assert info["batchSize"] == 3 and info["stream"] == "orders"
    assert info["streamArn"].startswith("arn:kubelambda:redis:eu-west-1:")
