import os
import time


def wait_for(gate):
    deadline = time.monotonic() + 20
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError("the test never opened the gate")
        time.sleep(0.01)


def handler(event, context):
    mode = event.get("mode", "stream")
    if mode == "buffered":
        return {"buffered": True}
    if mode == "fail-early":
        raise ValueError("refused before streaming")

    def chunks():
        if event.get("rawPath") == "/prelude":
            yield {"statusCode": 201, "headers": {"X-Streamed": "yes"}, "cookies": ["s=1"]}
        yield "first;"
        if event.get("gate"):
            wait_for(event["gate"])
        elif event.get("body"):  # a function URL's request: echo its body back
            yield event["body"]
        yield "second;"
        if mode == "fail-late":
            raise RuntimeError("broke after the first bytes")
        yield "third"

    return chunks()
