"""The smallest useful Lambda function: greet whoever the event names."""

import os


def handler(event, context):
    name = (event or {}).get("name", "world") if isinstance(event, dict) else "world"
    greeting = os.environ.get("GREETING", "Hello")
    return {
        "message": f"{greeting}, {name}!",
        "function": context.function_name,
        "version": context.function_version,
        "requestId": context.aws_request_id,
    }
