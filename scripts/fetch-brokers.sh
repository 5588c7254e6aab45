#!/usr/bin/env bash
# Fetches the Java brokers the source tests start: Apache Kafka (KRaft) and ElasticMQ (SQS),
# as jars from Maven Central into .tools/<name>/libs, with Maven's ordinary dependency plugin.
# A stamp beside each libs folder records which pom it came from, so a changed pom refetches.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
command -v mvn >/dev/null 2>&1 || { echo "fetch-brokers: mvn (Maven) is needed" >&2; exit 1; }
command -v java >/dev/null 2>&1 || { echo "fetch-brokers: java (a JDK 17) is needed" >&2; exit 1; }
for name in kafka elasticmq; do
  pom="$root/scripts/brokers/$name/pom.xml"
  dest="$root/.tools/$name"
  sum="$(sha256sum "$pom" | cut -d' ' -f1)"
  if [ -f "$dest/.stamp" ] && [ "$(cat "$dest/.stamp")" = "$sum" ]; then
    continue
  fi
  echo "==> fetching $name jars (Maven)"
  rm -rf "$dest"
  mkdir -p "$dest"
  mvn -B -q -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$dest/libs"
  echo "$sum" > "$dest/.stamp"
done
