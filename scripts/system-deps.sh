#!/usr/bin/env bash
# Installs the Debian packages whose servers the component tests start themselves.
# SYSTEM_PACKAGES lists COMMAND:DEBIAN_PACKAGE pairs (set by the Makefile).
# Only what is missing is installed; apt-get update runs once, before the first install.
set -euo pipefail
needed=()
for pkg in ${SYSTEM_PACKAGES:-}; do
  cmd=${pkg%%:*}; deb=${pkg##*:}
  command -v "$cmd" >/dev/null 2>&1 || needed+=("$deb")
done
if [ ${#needed[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "==> installing ${needed[*]} (apt-get)"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${needed[@]}" >/dev/null
