import os


def handler(event, context):
    return {
        "event": event,
        "who": os.environ["WHO"],
        "version": context.function_version,
        "arn": context.invoked_function_arn,
        "clientContext": context.client_context.custom if context.client_context else None,
    }
