#!/usr/bin/env bash
# Installs the peer of `make bench-peer` from npm into .tools/peer (gitignored, outside the
# tracked tree): serverless-offline 13 and osls, the open-source fork of the Serverless
# Framework v3 that runs it. Versions are pinned here; the lock file npm writes there carries no
# registry URLs (omit-lockfile-registry-resolved), and install scripts are not run (none is
# needed to run Python handlers offline).
#
# Idempotent: nothing is done when the pinned versions are installed already. Without npm it
# says so and exits 0, and bench.peer then skips with the reason.
set -euo pipefail

cd "$(dirname "$0")/.."

DEST=${PEER_DEST:-.tools/peer}
OSLS_VERSION=3.77.1
OFFLINE_VERSION=13.9.0

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "peer-tools: node and npm are not installed; bench.peer will skip"
  exit 0
fi

installed() {
  node -e "process.stdout.write(require('./$DEST/node_modules/$1/package.json').version)" \
    2>/dev/null || true
}

if [ "$(installed osls)" = "$OSLS_VERSION" ] && \
   [ "$(installed serverless-offline)" = "$OFFLINE_VERSION" ]; then
  exit 0
fi

mkdir -p "$DEST"
cat >"$DEST/package.json" <<JSON
{
  "name": "kubelambda-bench-peer",
  "private": true,
  "description": "The peer of make bench-peer (written by scripts/peer-tools.sh)",
  "dependencies": {
    "osls": "$OSLS_VERSION",
    "serverless-offline": "$OFFLINE_VERSION"
  }
}
JSON
echo "==> installing osls $OSLS_VERSION and serverless-offline $OFFLINE_VERSION into $DEST"
# serverless-offline names `serverless` as a peer; osls is that framework, so peers are not
# installed (legacy-peer-deps).
(cd "$DEST" && npm install --no-audit --no-fund --ignore-scripts --legacy-peer-deps \
  --omit-lockfile-registry-resolved)
# The lock file keeps names, versions and integrity hashes only: no URL of any kind.
node -e '
const fs = require("fs"); const file = process.argv[1];
const lock = JSON.parse(fs.readFileSync(file, "utf8"));
for (const entry of Object.values(lock.packages || {})) { delete entry.funding; delete entry.resolved; }
fs.writeFileSync(file, JSON.stringify(lock, null, 2) + "\n");' "$DEST/package-lock.json"
