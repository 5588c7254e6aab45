"""Asynchronous invocation (InvocationType Event): a durable queue, its workers and destinations.

An Event invoke is stored durably before the gateway answers 202 (`submit`). Workers lease
events from the queue (`queue`: SQLite embedded, NATS JetStream for clusters), invoke through
the same dispatch core as the sync path, retry function errors and throttles on Lambda's
schedule (`schedule`, `policy`), honour the maximum event age, and send the invocation record
to the onSuccess/onFailure destination and the original event to the dead-letter target
(`record`, `destinations`). An event whose record cannot be delivered stays in the queue's
dead-letter store, where an operator can read it.
"""
