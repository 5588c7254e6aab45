import sys


def handler(event, context):
    chunk = "x" * (1024 * 1024)
    for _ in range(event.get("mib", 100)):
        sys.stdout.write(chunk)  # no newline, ever
    sys.stdout.flush()
    return "done"
