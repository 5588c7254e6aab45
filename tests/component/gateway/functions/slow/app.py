import os
import time


def handler(event, context):
    start = time.monotonic_ns()
    time.sleep(float(event.get("sleep", 0.1)))
    end = time.monotonic_ns()
    log = event.get("log")
    if log:
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, f"{start} {end}\n".encode())
        os.close(fd)
    return {"slept": event.get("sleep", 0.1), "pid": os.getpid()}
