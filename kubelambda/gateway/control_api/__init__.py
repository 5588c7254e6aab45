"""The Lambda control API's HTTP routes: the operations of botocore's Lambda model that
`kubelambda.serving.control` serves (the others are answered by `gateway/operations.py`)."""
