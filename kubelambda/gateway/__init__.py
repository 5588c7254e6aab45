"""The gateway: the Invoke API, routing, admission, dispatch and the async queue."""
