#!/usr/bin/env bash
# A deploy pipeline written against AWS Lambda with the AWS CLI, run unchanged against kubelambda.
#
#   lambda_flow.sh ENDPOINT_URL FUNCTION_NAME WORKDIR
#
# The same steps as lambda_flow.py, with the CLI's own waiters. Each step prints one
# "step: value" line; the first failure stops the script with a non-zero exit.
set -euo pipefail

endpoint=$1 name=$2 work=$3
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=us-east-1
export AWS_MAX_ATTEMPTS=1 AWS_PAGER=""
lambda() { aws lambda --endpoint-url "$endpoint" --output json "$@"; }

package() {  # package TAG -> $work/TAG.zip
  mkdir -p "$work/$1"
  cat >"$work/$1/app.py" <<PY
import os

def handler(event, context):
    return {"code": "$1", "version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"]}
PY
  (cd "$work/$1" && python -m zipfile -c "../$1.zip" app.py)
}

call() {  # call QUALIFIED_NAME -> the payload
  lambda invoke --function-name "$1" --payload '{}' "$work/out.json" >"$work/meta.json"
  cat "$work/out.json"
}

package one && package two && package three

state=$(lambda create-function --function-name "$name" --runtime python3.12 \
  --role arn:aws:iam::000000000000:role/lambda-role --handler app.handler \
  --zip-file "fileb://$work/one.zip" --query State --output text)
echo "created: $state"
lambda wait function-active --function-name "$name"
echo "first: $(call "$name")"

status=$(lambda update-function-code --function-name "$name" --zip-file "fileb://$work/two.zip" \
  --query LastUpdateStatus --output text)
echo "update: $status"
lambda wait function-updated --function-name "$name"
echo "second: $(call "$name")"

one=$(lambda publish-version --function-name "$name" --query Version --output text)
lambda wait published-version-active --function-name "$name" --qualifier "$one"
lambda update-function-code --function-name "$name" --zip-file "fileb://$work/three.zip" >/dev/null
lambda wait function-updated --function-name "$name"
two=$(lambda publish-version --function-name "$name" --query Version --output text)
lambda wait published-version-active --function-name "$name" --qualifier "$two"
echo "versions: $one $two"

lambda create-alias --function-name "$name" --name live --function-version "$one" \
  --routing-config "AdditionalVersionWeights={$two=0.1}" >/dev/null
echo "alias: $(lambda get-alias --function-name "$name" --name live \
  --query '[FunctionVersion, RoutingConfig.AdditionalVersionWeights]' --output json | tr -d ' \n')"
echo "alias invoke: $(call "$name:live")"

lambda put-function-concurrency --function-name "$name" --reserved-concurrent-executions 0 >/dev/null
deadline=$((SECONDS + 60))
until ! lambda invoke --function-name "$name" --payload '{}' "$work/out.json" 2>"$work/err.txt" >/dev/null; do
  [ $SECONDS -lt $deadline ] || { echo "no throttle at concurrency 0" >&2; exit 1; }
done
echo "throttled: $(grep -o 'TooManyRequestsException' "$work/err.txt" | head -1)"

lambda delete-function-concurrency --function-name "$name"
deadline=$((SECONDS + 60))
until lambda invoke --function-name "$name" --payload '{}' "$work/out.json" >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || { echo "still throttled after delete-function-concurrency" >&2; exit 1; }
done
echo "after: $(cat "$work/out.json")"

lambda delete-function --function-name "$name"
if lambda get-function --function-name "$name" 2>"$work/err.txt" >/dev/null; then
  echo "the function is still there" >&2
  exit 1
fi
echo "deleted: $(grep -o 'ResourceNotFoundException' "$work/err.txt" | head -1)"
