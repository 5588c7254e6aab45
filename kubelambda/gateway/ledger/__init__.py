"""One concurrency ledger across gateway replicas: pure allotments (`allot`), Lambda's scaling
rate (`rate`) and the replica's side of the shared record (`share`). The I/O edge that keeps the
record in Lease objects is `kubelambda.kube.ledgerstore`."""
