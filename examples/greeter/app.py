"""A function whose greeting comes from its configuration, so each Version answers differently."""

import os


def handler(event, context):
    return {
        "greeting": os.environ["GREETING"],
        "version": context.function_version,
        "alias": context.invoked_function_arn.rsplit(":", 1)[-1],
    }
