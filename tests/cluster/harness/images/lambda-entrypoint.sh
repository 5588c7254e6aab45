#!/bin/sh
# The test kubelet's /lambda-entrypoint.sh of public.ecr.aws/lambda/python:3.*. The real one
# checks it got one argument, exports _HANDLER and execs /var/runtime/bootstrap, which runs the
# runtime interface client on the handler; here that is awslambdaric on the venv's Python.
if [ $# -ne 1 ]; then
  echo "entrypoint requires the handler name to be the first argument" >&2
  exit 142
fi
export _HANDLER="$1"
exec python3 -m awslambdaric "$1"
