#!/usr/bin/env bash
# Installs what the tests need (redis-server, Node.js with npm, Debian's chromium), builds everything with
# warnings as errors, runs every test (.NET with NUnit, the TypeScript SDK with node's test runner, the seeker
# page in Chromium), and ends with one line "N passed, N failed[, N skipped]" counted from the test results.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1 && [ ! -x /usr/bin/redis-server ]; then
  echo "redis-server is missing; installing it with apt-get (the tests run against a real Redis)."
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  # The package may start a system-wide Redis; the tests start their own on free ports and need none.
fi

apt_install() {
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  if [ -z "${apt_updated:-}" ]; then $sudo apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "Node.js or npm is missing; installing them with apt-get (the web SDK and the seeker page are built and tested with them)."
  apt_install nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "Node.js $(node --version) is too old: the web side needs Node.js 20 or later (Debian 13's nodejs, or NodeSource's nodejs 20 on Debian 12)."
  exit 1
fi
if [ -z "${CHROMIUM_PATH:-}" ] && ! command -v chromium >/dev/null 2>&1; then
  echo "chromium is missing; installing Debian's chromium with apt-get (the seeker page is tested in it; no browser is downloaded)."
  apt_install chromium
fi

# The web side from its lock file: the SDK (and its tests), the seeker page and the console; the package must pack.
(cd Web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent) || exit 1
(cd Web/sdk && npm pack --dry-run --silent >/dev/null 2>&1) || { echo "npm pack of Web/sdk failed."; exit 1; }

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

# The TypeScript SDK's own tests (known answers, vectors, negative cases), counted from their TAP output.
(cd Web/sdk && node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$results/web-sdk.tap" dist/test/*.test.js) || status=1

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

if [ -f "$results/web-sdk.tap" ]; then
  tap_get() { n=$(sed -n "s/^# $1 \([0-9]*\)$/\1/p" "$results/web-sdk.tap" | tail -n 1); echo "${n:-0}"; }
  passed=$((passed + $(tap_get pass)))
  failed=$((failed + $(tap_get fail) + $(tap_get cancelled)))
  skipped=$((skipped + $(tap_get skipped) + $(tap_get todo)))
else
  echo "The web SDK's tests wrote no results."
  status=1
fi

if [ "$trx_count" -eq 0 ]; then
  echo "No test results were written; the test run did not happen."
  status=1
fi
if [ "$passed" -eq 0 ]; then
  status=1
fi

# Each failed test again, at the very end where a truncated log still shows it: its name and its message.
for trx in "$results"/*.trx; do
  [ -e "$trx" ] || continue
  perl -0777 -ne '
    while (/<UnitTestResult\b([^>]*)>(.*?)<\/UnitTestResult>/gs) {
      my ($attrs, $body) = ($1, $2);
      next unless $attrs =~ /outcome="(Failed|Error|Timeout|Aborted)"/;
      my ($name) = $attrs =~ /testName="([^"]*)"/;
      my ($message) = $body =~ /<Message>(.*?)<\/Message>/s;
      my ($stack) = $body =~ /<StackTrace>(.*?)<\/StackTrace>/s;
      for ($message, $stack) { $_ //= ""; s/&lt;/</g; s/&gt;/>/g; s/&quot;/"/g; s/&apos;/\x27/g; s/&amp;/&/g; }
      my @stack = (split /\n/, $stack)[0 .. 5];
      print "FAILED $name\n", join("\n", grep { defined } (split /\n/, $message)[0 .. 14]), "\n", join("\n", grep { defined } @stack), "\n\n";
    }' "$trx"
done
if [ -f "$results/web-sdk.tap" ]; then grep -E "^not ok " "$results/web-sdk.tap" | sed 's/^/FAILED (web sdk) /' || true; fi

line="$passed passed, $failed failed"
if [ "$skipped" -gt 0 ]; then line="$line, $skipped skipped"; fi
echo "$line"
if [ "$failed" -gt 0 ]; then status=1; fi
exit "$status"
