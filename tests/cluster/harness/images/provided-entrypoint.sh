#!/bin/sh
# The test kubelet's /lambda-entrypoint.sh of public.ecr.aws/lambda/provided:al2023. The real one
# execs /var/runtime/bootstrap, which only an image built FROM this one fills: a Zip function's
# bootstrap is in /var/task (or a layer's in /opt), so the operator's shim never runs this.
exec /var/runtime/bootstrap "$@"
