"""Records every batch it gets, whatever the source's shape, and fails on request.

Each payload is a JSON object with `run` (the test's name) and `n`; the batch is appended to
$OUT/<run>.jsonl. `fail: K` reports the record as failed its first K deliveries (a batch item
failure), `crash: K` raises for its first K deliveries, `sleep: S` sleeps S seconds.
"""

import base64
import fcntl
import json
import os
import time

OUT = os.environ["OUT"]


def items(event):
    """(identifier, partition, payload) for each record, for any source's shape."""
    if "Records" in event:
        for r in event["Records"]:
            if r.get("eventSource") == "aws:sqs":
                yield r["messageId"], "q", json.loads(r["body"])
            else:
                inner = r.get("redis") or r.get("nats")
                payload = json.loads(base64.b64decode(inner["data"]))
                yield inner["sequenceNumber"], inner["stream"], payload
    elif "records" in event:
        for part, records in event["records"].items():
            for r in records:
                yield str(r["offset"]), part, json.loads(base64.b64decode(r["value"]))
    elif "rmqMessagesByQueue" in event:
        for messages in event["rmqMessagesByQueue"].values():
            for m in messages:
                ident = m["basicProperties"]["messageId"] or str(m["deliveryTag"])
                yield ident, "q", json.loads(base64.b64decode(m["data"]))


def deliveries(run, keys):
    """Counts deliveries per record across environments (a locked file)."""
    path = os.path.join(OUT, f"{run}.counts")
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.seek(0)
        counts = json.loads(f.read() or "{}")
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        f.seek(0)
        f.truncate()
        f.write(json.dumps(counts))
        return counts


def handler(event, context):
    got = list(items(event))
    if not got:
        return None
    run = got[0][2]["run"]
    counts = deliveries(run, [str(p["n"]) for _, _, p in got])
    line = {
        "t": time.time(),
        "ids": [i for i, _, _ in got],
        "parts": [part for _, part, _ in got],
        "ns": [p["n"] for _, _, p in got],
    }
    with open(os.path.join(OUT, f"{run}.jsonl"), "a") as f:
        f.write(json.dumps(line) + "\n")
    for _, _, p in got:
        if p.get("sleep"):
            time.sleep(p["sleep"])
    for _, _, p in got:
        if p.get("crash", 0) >= counts[str(p["n"])]:
            raise RuntimeError(f"crash on {p['n']}")
    failed = [i for i, _, p in got if p.get("fail", 0) >= counts[str(p["n"])]]
    return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}
