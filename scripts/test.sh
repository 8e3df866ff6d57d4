#!/usr/bin/env bash
# Installs what the tests need (redis-server), builds everything with warnings as errors, runs every test,
# and ends with one line "N passed, N failed[, N skipped]" counted from the test results.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  echo "redis-server is missing; installing it with apt-get (the tests run against a real Redis)."
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  # The package may start a system-wide Redis; the tests start their own on free ports and need none.
fi

# The deploy tests: promtool checks the alert rules; scripts/deploy-smoke.sh runs nginx, Prometheus and jq.
if ! command -v promtool >/dev/null 2>&1 || ! command -v nginx >/dev/null 2>&1 || ! command -v jq >/dev/null 2>&1; then
  echo "prometheus, nginx or jq is missing; installing them with apt-get (the deploy tests use them)."
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus nginx jq openssl >/dev/null
fi

results="$(pwd)/artifacts/test-results"
rm -rf "$results"
mkdir -p "$results"

status=0
dotnet build TrustLine.sln -c Release -warnaserror -nologo -v quiet || exit 1
dotnet test TrustLine.sln -c Release --no-build --nologo \
  --logger "trx" --logger "console;verbosity=normal" \
  --results-directory "$results" || status=$?

passed=0; failed=0; skipped=0; trx_count=0
for trx in "$results"/*.trx; do
  [ -e "$trx" ] || continue
  trx_count=$((trx_count + 1))
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1)
  get() { echo "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
  total=$(get total); executed=$(get executed); p=$(get passed); f=$(get failed)
  e=$(get error); t=$(get timeout); a=$(get aborted)
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0} + ${e:-0} + ${t:-0} + ${a:-0}))
  skipped=$((skipped + ${total:-0} - ${executed:-0}))
done

if [ "$trx_count" -eq 0 ]; then
  echo "No test results were written; the test run did not happen."
  status=1
fi
if [ "$passed" -eq 0 ]; then
  status=1
fi

line="$passed passed, $failed failed"
if [ "$skipped" -gt 0 ]; then line="$line, $skipped skipped"; fi
echo "$line"
if [ "$failed" -gt 0 ]; then status=1; fi
exit "$status"
