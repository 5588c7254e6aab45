"""kubelambda: AWS Lambda's programming model on Kubernetes."""

__version__ = "0.1.0"
