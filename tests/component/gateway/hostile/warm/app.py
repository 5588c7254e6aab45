import os


def handler(event, context):
    return {"pid": os.getpid(), "event": event}
