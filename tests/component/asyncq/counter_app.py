"""The test functions' code (copied into each function folder as app.py).

It appends one JSON line per run to $OUT with O_APPEND (an idempotent counter: the request id
says which event ran), optionally sleeps ($SLEEP) and fails ($FAIL).
"""

import json
import os
import time


def handler(event, context):
    start = time.time()
    if float(os.environ.get("SLEEP", "0")):
        time.sleep(float(os.environ["SLEEP"]))
    line = {"id": context.aws_request_id, "start": start, "end": time.time()}
    if os.environ.get("KEEP_EVENT"):
        line["event"] = event
    fd = os.open(os.environ["OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(line) + "\n").encode())
    finally:
        os.close(fd)
    if os.environ.get("FAIL"):
        raise ValueError(f"boom {context.aws_request_id}")
    return {"ok": True, "id": context.aws_request_id}
