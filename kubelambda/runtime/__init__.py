"""Execution environments: the agent, the Lambda Runtime API server and the runtime bootstraps."""
