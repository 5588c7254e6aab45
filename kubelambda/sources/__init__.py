"""Event-source pollers: read a queue or stream, batch, filter, invoke, checkpoint."""
