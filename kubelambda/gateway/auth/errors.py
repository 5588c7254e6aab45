"""The four auth errors, exactly as AWS answers them (403, `x-amzn-ErrorType`, JSON message)."""

from __future__ import annotations

from kubelambda.serving.errors import LambdaError

SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method. Consult the service documentation for details."
)


def missing_token() -> LambdaError:
    return LambdaError("MissingAuthenticationTokenException", "Missing Authentication Token")


def unrecognized_client() -> LambdaError:
    return LambdaError(
        "UnrecognizedClientException", "The security token included in the request is invalid."
    )


def invalid_signature(message: str = SIGNATURE_MISMATCH) -> LambdaError:
    return LambdaError("InvalidSignatureException", message)


def access_denied(user_arn: str, action: str, resource: str) -> LambdaError:
    return LambdaError(
        "AccessDeniedException",
        f"User: {user_arn} is not authorized to perform: {action} on resource: {resource} "
        f"because no identity-based policy allows the {action} action",
    )
