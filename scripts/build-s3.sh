#!/usr/bin/env bash
# Builds the S3-compatible server the code-store tests start (versitygw, posix backend) into
# .tools/bin/versitygw from its published Go module, pinned in tools/s3/go.mod and go.sum.
#
# Modules come through the Go module proxy only. A stamp beside the binary records the module
# version and the go.sum digest it was built from, so the build runs again only when the pin
# changes. Override the destination folder with S3_TOOLS_BIN.
set -euo pipefail

cd "$(dirname "$0")/.."

BIN_DIR=${S3_TOOLS_BIN:-.tools/bin}
DEST="$BIN_DIR/versitygw"
STAMP="$DEST.version"

if ! command -v go >/dev/null 2>&1; then
  echo "build-s3: go is not on PATH; install Go 1.25 or newer" >&2
  exit 1
fi

version=$(awk '$1 == "require" && $2 == "github.com/versity/versitygw" {print $3}' tools/s3/go.mod)
if [ -z "$version" ]; then
  echo "build-s3: tools/s3/go.mod does not pin github.com/versity/versitygw" >&2
  exit 1
fi
want="versitygw $version $(sha256sum tools/s3/go.sum | cut -d' ' -f1) $(go env GOVERSION)"

if [ -x "$DEST" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi

mkdir -p "$BIN_DIR"
abs_bin=$(cd "$BIN_DIR" && pwd)
echo "==> building versitygw $version into $DEST (Go module proxy; first build takes minutes)"
(
  cd tools/s3
  GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o "$abs_bin/versitygw.tmp" \
    github.com/versity/versitygw/cmd/versitygw
)
mv -f "$abs_bin/versitygw.tmp" "$DEST"
printf '%s\n' "$want" >"$STAMP"
echo "==> $DEST built ($version)"
