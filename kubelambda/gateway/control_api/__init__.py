"""The Lambda control API's HTTP routes: every operation of botocore's Lambda model, served by
`kubelambda.serving.control` or answered as not served."""
