#!/usr/bin/env bash
# Proves the files in deploy/ with real processes, where container images cannot be built:
#   Redis with deploy/redis/redis.conf, two published server nodes in Production with a fresh organisation
#   (made here with the trustline command), nginx with deploy/nginx/trustline.conf and a self-signed
#   certificate, and Prometheus with deploy/prometheus/prometheus.yml.
# Then a counsellor and a seeker talk through nginx with the trustline command, the node holding their
# connections is killed, and the conversation goes on through nginx on the other node. Prometheus must see
# both nodes up, and nginx's logs must hold no client address. Everything started here is stopped on exit.
#
# Usage: scripts/deploy-smoke.sh            (installs nginx, redis-server, prometheus, jq, openssl, curl
#                                            with apt-get when missing; exit 77 when they cannot be installed)
# Environment: SMOKE_KEEP=1 keeps the work folder (logs, configuration) for reading afterwards;
# SMOKE_LIMIT (seconds, default 100) bounds the run after publishing.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
start_time=$SECONDS
limit=${SMOKE_LIMIT:-100}
work="$(mktemp -d -t trustline-smoke-XXXXXX)"
pids=()

say() { printf 'deploy-smoke: %s\n' "$*"; }
fail() {
  say "FAILED: $*"
  for log in "$work"/*.log "$work"/*.out "$work"/nginx/*.log; do
    [ -s "$log" ] || continue
    printf -- '--- %s (last lines)\n' "${log#"$work"/}"
    tail -n 15 "$log"
  done
  exit 1
}

cleanup() {
  local status=$? i pid
  # Last started, first stopped: clients, Prometheus, nginx, nodes, and Redis after the nodes that use it.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ "${SMOKE_KEEP:-0}" = 1 ]; then say "work folder kept: $work"; else rm -rf "$work"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

left() { echo $((limit - (SECONDS - start_time))); }

# until_true SECONDS WHAT COMMAND...: runs COMMAND every 0.2 s until it succeeds, or fails the smoke.
until_true() {
  local seconds=$1 what=$2; shift 2
  local until=$((SECONDS + seconds))
  while ! "$@" >"$work/wait.out" 2>&1; do
    if [ "$SECONDS" -ge "$until" ] || [ "$(left)" -le 0 ]; then fail "timed out after ${seconds} s waiting until $what"; fi
    sleep 0.2
  done
}

has_text() { grep -qF -- "$2" "$1"; }

# A port nobody listens on, below the kernel's range for outgoing connections (whose local ports would
# make a listener's bind fail even though nothing listens there).
ephemeral_low=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
  local port
  while :; do
    port=$((10000 + RANDOM % (ephemeral_low - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
}

# --- tools ------------------------------------------------------------------------------------------
missing=()
for tool in nginx:nginx redis-server:redis-server prometheus:prometheus jq:jq openssl:openssl curl:curl; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing ${missing[*]} with apt-get"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo -n"; fi
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    say "cannot install ${missing[*]} (no root, or no package source): skipped"
    exit 77
  fi
fi

# --- build: the server and the trustline command, published ------------------------------------------
say "publishing the server and the trustline command"
dotnet publish "$repo/Server/Server.csproj" -c Release -o "$work/server" -nologo -v quiet >"$work/publish.log" 2>&1 || fail "dotnet publish Server"
dotnet publish "$repo/Cli/Cli.csproj" -c Release -o "$work/cli" -nologo -v quiet >>"$work/publish.log" 2>&1 || fail "dotnet publish Cli"
trustline() { dotnet "$work/cli/trustline.dll" "$@"; }
say "published in $((SECONDS - start_time)) s"
start_time=$SECONDS # the time limit (SMOKE_LIMIT, seconds) counts from here: the run, not the build

# --- an organisation, as its admin and a counsellor would make it (docs/deploy.md) ----------------------
say "making a test organisation with the trustline command"
admin_pass="smoke admin $RANDOM$RANDOM"
counsellor_pass="smoke counsellor $RANDOM$RANDOM"
printf '%s\n' "$admin_pass" | trustline org init --dir "$work/org" --name "Smoke Line" --languages nl,en --topics health >"$work/org-init.out" 2>&1 || fail "trustline org init"
printf '%s\n%s\n' "$admin_pass" "$admin_pass" | trustline org issuer --dir "$work/org" >"$work/org-issuer.out" 2>&1 || fail "trustline org issuer"
printf '%s\n' "$counsellor_pass" | trustline responder keygen --out "$work/counsellor.key" >"$work/keygen.out" 2>&1 || fail "trustline responder keygen"
fingerprint="$(sed -n 's/^Fingerprint: //p' "$work/keygen.out")"
printf '%s\n' "$admin_pass" | trustline org certify --dir "$work/org" --responder-pub "$work/counsellor.pub" --fingerprint "$fingerprint" --out "$work/counsellor.cert" >"$work/certify.out" 2>&1 || fail "trustline org certify"
org_id="$(jq -r .id "$work/org/organisation.json")"
# The organisation block goes in appsettings.Production.json beside the published server (docs/deploy.md).
jq '{Organisations: {smoke: {Id: .id, Name: .name, Languages: .languages, Topics: .topics, Roots: .roots}}}' \
  "$work/org/organisation.json" >"$work/server/appsettings.Production.json"

# --- Redis with deploy/redis/redis.conf ------------------------------------------------------------
redis_port=$(free_port)
redis_password="$(openssl rand -hex 24)"
mkdir -p "$work/redis"
redis-server "$repo/deploy/redis/redis.conf" --port "$redis_port" --bind 127.0.0.1 --requirepass "$redis_password" \
  --dir "$work/redis" --daemonize no --logfile "$work/redis.log" &
pids+=($!)
rcli() { redis-cli -p "$redis_port" -a "$redis_password" --no-auth-warning "$@"; }
until_true 10 "Redis answers" rcli ping
[ "$(rcli config get maxmemory-policy | tail -n 1)" = noeviction ] || fail "Redis does not run with maxmemory-policy noeviction"
[ "$(rcli config get appendonly | tail -n 1)" = no ] || fail "Redis runs with an append-only file"
[ -z "$(rcli config get save | tail -n 1)" ] || fail "Redis runs with RDB snapshots"

# --- two nodes in Production ----------------------------------------------------------------------
declare -a node_port node_management node_pid
start_node() {
  local n=$1
  node_port[n]=$(free_port)
  node_management[n]=$(free_port)
  (
    cd "$work/server"
    export ASPNETCORE_ENVIRONMENT=Production
    # Urls, not ASPNETCORE_URLS: appsettings.json sets Urls, which outranks the ASPNETCORE_ variables.
    export Urls="http://127.0.0.1:${node_port[n]}"
    export Redis__Configuration="127.0.0.1:$redis_port,password=$redis_password"
    export Operations__Metrics=true
    export Limits__TrustedProxies__0=127.0.0.1
    export Operations__ManagementUrls="http://127.0.0.1:${node_management[n]}"
    export Operations__SampleInterval=00:00:02
    exec dotnet TrustLine.Server.dll
  ) >"$work/node$n.log" 2>&1 &
  node_pid[n]=$!
  pids+=($!)
}
say "starting two nodes"
start_node 1
start_node 2
for n in 1 2; do
  until_true 40 "node $n is ready" curl -fsS "http://127.0.0.1:${node_port[n]}/health/ready"
done

# --- nginx with deploy/nginx/trustline.conf, TLS from a certificate made here ----------------------------
say "starting nginx"
mkdir -p "$work/nginx/tmp" "$work/tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=TrustLine smoke CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
  -keyout "$work/tls/ca.key" -out "$work/tls/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$work/tls/privkey.pem" -out "$work/tls/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >"$work/tls/server.ext"
openssl x509 -req -in "$work/tls/server.csr" -CA "$work/tls/ca.pem" -CAkey "$work/tls/ca.key" -CAcreateserial -days 2 \
  -extfile "$work/tls/server.ext" -out "$work/tls/cert.pem" 2>/dev/null
cat "$work/tls/cert.pem" "$work/tls/ca.pem" >"$work/tls/fullchain.pem"
https_port=$(free_port)
http_port=$(free_port)
cat >"$work/nginx/trustline-site.conf" <<EOF
listen 127.0.0.1:$https_port ssl;
server_name localhost;
ssl_certificate $work/tls/fullchain.pem;
ssl_certificate_key $work/tls/privkey.pem;
EOF
printf 'listen 127.0.0.1:%s;\nserver_name localhost;\n' "$http_port" >"$work/nginx/trustline-redirect.conf"
printf 'server 127.0.0.1:%s max_fails=1 fail_timeout=10s;\n' "${node_port[1]}" "${node_port[2]}" >"$work/nginx/trustline-upstream.conf"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log $work/nginx/main-error.log warn;
events { worker_connections 256; }
http {
  client_body_temp_path $work/nginx/tmp/body;
  proxy_temp_path $work/nginx/tmp/proxy;
  fastcgi_temp_path $work/nginx/tmp/fastcgi;
  uwsgi_temp_path $work/nginx/tmp/uwsgi;
  scgi_temp_path $work/nginx/tmp/scgi;
  include $repo/deploy/nginx/trustline.conf;
}
EOF
nginx -t -p "$work/nginx" -c "$work/nginx/nginx.conf" >"$work/nginx-test.log" 2>&1 || fail "nginx -t rejects deploy/nginx/trustline.conf"
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' >"$work/nginx/access.log" 2>"$work/nginx/error.log" &
nginx_pid=$!
pids+=($!)
public="https://127.0.0.1:$https_port"
until_true 10 "nginx answers" curl -fsS --cacert "$work/tls/ca.pem" "$public/health/ready"
headers="$(curl -sS -D - -o /dev/null --cacert "$work/tls/ca.pem" "$public/v1/directory")"
grep -qi '^strict-transport-security:' <<<"$headers" || fail "no HSTS header through nginx"
grep -qi '^x-content-type-options: nosniff' <<<"$headers" || fail "no X-Content-Type-Options through nginx"
grep -qiE '^server: nginx/[0-9]' <<<"$headers" && fail "nginx names its version"
[ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$work/tls/ca.pem" "$public/metrics")" = 404 ] || fail "/metrics answers through nginx"

# --- Prometheus with deploy/prometheus/prometheus.yml ---------------------------------------------------
say "starting Prometheus"
mkdir -p "$work/prometheus/targets"
cp "$repo/deploy/prometheus/prometheus.yml" "$repo/deploy/prometheus/alerts.yml" "$repo/deploy/prometheus/opening-hours.yml" "$work/prometheus/"
printf -- '- targets:\n    - 127.0.0.1:%s\n    - 127.0.0.1:%s\n' "${node_management[1]}" "${node_management[2]}" >"$work/prometheus/targets/nodes.yml"
prometheus_port=$(free_port)
prometheus --config.file="$work/prometheus/prometheus.yml" --storage.tsdb.path="$work/prometheus/data" \
  --web.listen-address="127.0.0.1:$prometheus_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
pids+=($!)
prom="http://127.0.0.1:$prometheus_port"

# --- a conversation through nginx --------------------------------------------------------------------
say "a counsellor and a seeker talk through nginx"
export SSL_CERT_FILE="$work/tls/ca.pem" # the trustline processes trust the certificate made above
mkfifo "$work/respond.in" "$work/seek.in"
exec 7<>"$work/respond.in" 8<>"$work/seek.in"
trustline respond --server "$public" --key "$work/counsellor.key" <"$work/respond.in" >"$work/respond.out" 2>&1 &
respond_pid=$!
pids+=($!)
printf '%s\n' "$counsellor_pass" >&7
until_true 30 "the counsellor signed in" has_text "$work/respond.out" "Signed in"
trustline seek --server "$public" --org "$org_id" --pin "$work/org/organisation.json" --language nl --topic health \
  <"$work/seek.in" >"$work/seek.out" 2>&1 &
seek_pid=$!
pids+=($!)
until_true 30 "the seeker waits in the queue" has_text "$work/seek.out" "[waiting]"
printf '/take\n' >&7
until_true 30 "the seeker is connected to a verified counsellor" has_text "$work/seek.out" "[connected]"
printf 'Hallo via nginx\n' >&8
until_true 20 "the counsellor reads the seeker" has_text "$work/respond.out" "seeker: Hallo via nginx"
printf 'Welkom\n' >&7
until_true 20 "the seeker reads the counsellor" has_text "$work/seek.out" "counsellor: Welkom"

both_up() {
  [ "$(curl -fsS "$prom/api/v1/targets?state=active" | jq '[.data.activeTargets[] | select(.labels.job == "trustline" and .health == "up")] | length')" = 2 ]
}
until_true 45 "Prometheus sees both nodes up" both_up
curl -fsS "$prom/api/v1/rules" | jq -e '[.data.groups[].rules[]] | length >= 11' >/dev/null || fail "Prometheus did not load the alert rules"
# Every query of the Grafana dashboard, with its variables filled in, is one this Prometheus accepts.
jq -r '.panels[].targets[]?.expr' "$repo/deploy/grafana/trustline.json" | sed 's/\$__rate_interval/1m/g; s/\$organisation/.*/g' >"$work/dashboard-queries.txt"
[ -s "$work/dashboard-queries.txt" ] || fail "the dashboard has no queries"
while IFS= read -r query; do
  curl -fsS -G "$prom/api/v1/query" --data-urlencode "query=$query" | jq -e '.status == "success"' >/dev/null \
    || fail "Prometheus rejects the dashboard query: $query"
done <"$work/dashboard-queries.txt"

# Kill the node that holds the most of the two connections (SignalR's own gauge, from each node's /metrics).
connections() {
  curl -fsS "http://127.0.0.1:${node_management[$1]}/metrics" | awk '/^signalr_server_active_connections/ { n += $NF } END { print n + 0 }'
}
c1=$(connections 1); c2=$(connections 2)
if [ "$c1" -ge "$c2" ]; then doomed=1; survivor=2; else doomed=2; survivor=1; fi
[ "$((c1 + c2))" -ge 2 ] || fail "the nodes report $((c1 + c2)) connections; expected the seeker's and the counsellor's"
say "killing node $doomed (it holds $([ $doomed = 1 ] && echo "$c1" || echo "$c2") of the 2 connections)"
kill -KILL "${node_pid[doomed]}"
wait "${node_pid[doomed]}" 2>/dev/null || true

printf 'Na de storing\n' >&8
until_true 40 "the counsellor reads the seeker after the node died" has_text "$work/respond.out" "seeker: Na de storing"
printf 'Nog steeds hier\n' >&7
until_true 20 "the seeker reads the counsellor after the node died" has_text "$work/seek.out" "counsellor: Nog steeds hier"
resumed() {
  curl -fsS "http://127.0.0.1:${node_management[$survivor]}/metrics" | awk '/^trustline_resumes_total/ && /outcome="resumed"/ { n += $NF } END { exit !(n >= 1) }'
}
until_true 10 "the surviving node counts the resume" resumed

printf '/quit\n' >&8
until_true 20 "the seeker's chat ends" has_text "$work/seek.out" "[ended]"
until_true 20 "the counsellor is told the seeker ended it" has_text "$work/respond.out" "ended: the seeker ended the chat."
printf '/quit\n' >&7
wait "$seek_pid" || fail "trustline seek exited with $?"
wait "$respond_pid" || fail "trustline respond exited with $?"

# --- nginx's logs: requests are logged, addresses and query strings are not -------------------------
kill -QUIT "$nginx_pid"
wait "$nginx_pid" 2>/dev/null || true
cat "$work/nginx/access.log" "$work/nginx/error.log" "$work/nginx/main-error.log" >"$work/nginx-all.log" 2>/dev/null || true
grep -qF '"GET /hubs/seeker"' "$work/nginx/access.log" || fail "nginx logged no hub request: is the access log on?"
if grep -nE '127\.0\.0\.1|::1|\[::|access_token' "$work/nginx-all.log"; then
  fail "nginx's logs name a client address or a token"
fi

say "passed in $((SECONDS - start_time)) s: conversation through nginx, resumed on node $survivor after node $doomed was killed; Prometheus saw both nodes; nginx logged no address"
