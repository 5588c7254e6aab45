#!/usr/bin/env bash
# Builds the test control plane (kube-apiserver, kube-controller-manager, kube-scheduler, etcd)
# from the Go module in tools/kube into .tools/bin/, with the ordinary `go` client.
#
# The versions come from tools/kube/go.mod (k8s.io/kubernetes and go.etcd.io/etcd/server/v3). A
# stamp keyed by those versions, the go.sum and the Go release makes a second run a no-op. Each
# binary carries its release in `--version` (and the apiserver's /version), as a release build
# does, so version checks such as a chart's kubeVersion see the real one.
#
# Fails with a message, not a hang, when go is missing or the module proxy cannot be reached.
# Override the destination with KUBE_TOOLS_DEST, the download limit with GO_DOWNLOAD_TIMEOUT.
set -euo pipefail

cd "$(dirname "$0")/.."
MODULE=tools/kube
DEST=${KUBE_TOOLS_DEST:-.tools/bin}
DOWNLOAD_TIMEOUT=${GO_DOWNLOAD_TIMEOUT:-1200}

if ! command -v go >/dev/null 2>&1; then
  echo "make tools: the Go toolchain (go) is not on PATH. The test control plane is built from" \
    "Go modules; install Go $(sed -n 's/^go //p' "$MODULE/go.mod") or newer and run make tools again." >&2
  exit 1
fi

version_of() {  # the version tools/kube/go.mod requires for module $1
  awk -v mod="$1" '$1 == mod && $2 ~ /^v/ {print $2; exit}' "$MODULE/go.mod"
}
KUBE_VERSION=$(version_of k8s.io/kubernetes)
ETCD_VERSION=$(version_of go.etcd.io/etcd/server/v3)
GO_VERSION=$(go env GOVERSION)
if [ -z "$KUBE_VERSION" ] || [ -z "$ETCD_VERSION" ]; then
  echo "make tools: cannot read the k8s.io/kubernetes and etcd versions from $MODULE/go.mod" >&2
  exit 1
fi
SUM=$(sha256sum "$MODULE/go.mod" "$MODULE/go.sum" "$MODULE/cmd/etcd/main.go" | sha256sum | cut -c1-16)
KEY="kubernetes=$KUBE_VERSION etcd=$ETCD_VERSION $GO_VERSION sum=$SUM"
STAMP="$DEST/.kube-tools-stamp"
BINARIES=(kube-apiserver kube-controller-manager kube-scheduler etcd)

up_to_date() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$KEY" ] || return 1
  for bin in "${BINARIES[@]}"; do [ -x "$DEST/$bin" ] || return 1; done
}
if up_to_date; then
  echo "==> control plane binaries up to date in $DEST ($KEY)"
  exit 0
fi

case "$(go env GOPROXY)" in
  off | "")
    echo "make tools: GOPROXY is off; the Kubernetes and etcd modules come from the Go module" \
      "proxy. Set GOPROXY (the default is the public proxy) and run make tools again." >&2
    exit 1
    ;;
esac

started=$(date +%s)
echo "==> downloading the Go modules of Kubernetes $KUBE_VERSION and etcd $ETCD_VERSION" \
  "(GOPROXY=$(go env GOPROXY); at most ${DOWNLOAD_TIMEOUT}s)"
if ! (cd "$MODULE" && timeout "$DOWNLOAD_TIMEOUT" go mod download); then
  echo "make tools: could not download the modules in $MODULE/go.mod from the Go module proxy" \
    "(GOPROXY=$(go env GOPROXY)). Check that the proxy is reachable, then run make tools again." >&2
  exit 1
fi
echo "==> modules ready after $(($(date +%s) - started))s; module cache: $(du -sh "$(go env GOMODCACHE)" 2>/dev/null | cut -f1)"

minor=${KUBE_VERSION#v1.}
minor=${minor%%.*}
stamp_flags="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
stamp_flags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
stamp_flags+=" -X k8s.io/component-base/version.gitTreeState=clean"
stamp_flags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
stamp_flags+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"

mkdir -p "$DEST"
rm -f "$STAMP"
out=$(cd "$DEST" && pwd)
packages=()
for bin in "${BINARIES[@]}"; do
  case "$bin" in
    etcd) packages+=(./cmd/etcd) ;;
    *) packages+=("k8s.io/kubernetes/cmd/$bin") ;;
  esac
done
step=$(date +%s)
echo "==> building ${BINARIES[*]} in one go build (shared packages compile once, in parallel);" \
  "the first build compiles Kubernetes and takes a while"
# `go build -v` names each package it compiles: count them as progress, pass anything else on.
set +e
(cd "$MODULE" && go build -v -ldflags "$stamp_flags" -o "$out/" "${packages[@]}") 2>&1 | {
  count=0
  while IFS= read -r line; do
    case "$line" in
      *" "* | "") echo "$line" ;;
      *)
        count=$((count + 1))
        if [ $((count % 250)) -eq 0 ]; then
          echo "    $count packages compiled ($(($(date +%s) - step))s)"
        fi
        ;;
    esac
  done
  echo "    $count packages compiled in $(($(date +%s) - step))s"
}
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo "make tools: go build failed (status $status); the output above says why" >&2
  exit "$status"
fi
for bin in "${BINARIES[@]}"; do
  [ -x "$DEST/$bin" ] || { echo "make tools: $DEST/$bin was not built" >&2; exit 1; }
done
"$DEST/kube-apiserver" --version
echo "$KEY" >"$STAMP"
echo "==> control plane binaries in $DEST after $(($(date +%s) - started))s ($KEY)"
