#!/usr/bin/env bash
# Gateway benchmark (not part of `make test`): wrk against
#   (a) the backend directly (nginx answering a small static body, plain HTTP),
#   (b) nginx as a TLS reverse proxy to it (proxy_pass, keep-alive upstream),
#   (c) portier over TLS with a valid session cookie (session check, access policy, identity headers incl. the
#       cached ES256 JWT), to the same backend,
# in the same run, and prints req/s for each and the ratios c/a and c/b.
# Usage: tests/bench/run.sh [seconds] [connections]
# env: PORTIER_BIN (default build/portier); BENCH_WORKERS: portier loops = nginx workers (default: cores);
#      BENCH_WRK_THREADS (default: cores); BENCH_ROUNDS: interleaved rounds, medians reported (default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DURATION=${1:-10}
CONNS=${2:-64}
BIN=${PORTIER_BIN:-$ROOT/build/portier}
THREADS=${BENCH_WRK_THREADS:-$(nproc)}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { echo "nginx is missing: apt-get install nginx-light" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

STATE=$(mktemp -d /tmp/portier-bench.XXXXXX)
chmod 755 "$STATE"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$STATE/nginx-backend.pid" ] && kill "$(cat "$STATE/nginx-backend.pid")" 2>/dev/null || true
    [ -f "$STATE/nginx-proxy.pid" ] && kill "$(cat "$STATE/nginx-proxy.pid")" 2>/dev/null || true
    "$ROOT/scripts/pg.sh" stop "$STATE/pg" >/dev/null 2>&1 || true
    rm -rf "$STATE"
}
trap cleanup EXIT

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
BACKEND_PORT=$(free_port); PROXY_PORT=$(free_port); PORTIER_PORT=$(free_port)

"$ROOT/scripts/gen-dev-keys.sh" "$STATE" >/dev/null
CONNINFO=$("$ROOT/scripts/pg.sh" start "$STATE/pg" | tail -n 1)

nginx_conf() { # name body
    cat > "$STATE/nginx-$1.conf" <<NGX
daemon on;
worker_processes ${BENCH_WORKERS:-$(nproc)};
pid $STATE/nginx-$1.pid;
error_log $STATE/nginx-$1.error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $STATE/nginx-$1-tmp;
    proxy_temp_path $STATE/nginx-$1-tmp;
    fastcgi_temp_path $STATE/nginx-$1-tmp;
    uwsgi_temp_path $STATE/nginx-$1-tmp;
    scgi_temp_path $STATE/nginx-$1-tmp;
$2
}
NGX
    "$NGINX" -c "$STATE/nginx-$1.conf" -e "$STATE/nginx-$1.error.log"
}
nginx_conf backend "    server { listen 127.0.0.1:$BACKEND_PORT; location / { default_type text/plain; return 200 'hello from the backend\n'; } }"
nginx_conf proxy "    upstream be { server 127.0.0.1:$BACKEND_PORT; keepalive 64; }
    server {
        listen 127.0.0.1:$PROXY_PORT ssl http2;
        ssl_certificate $STATE/tls/cert.pem; ssl_certificate_key $STATE/tls/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / { proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection \"\"; }
    }"

cat > "$STATE/portier.yaml" <<YAML
server:
  listen: { address: 127.0.0.1, port: $PORTIER_PORT }
  public_url: https://127.0.0.1:$PORTIER_PORT
  threads: ${BENCH_WORKERS:-$(nproc)}
  workers: 1
  tls: { certificate: $STATE/tls/cert.pem, key: $STATE/tls/key.pem }
state_dir: $STATE
templates_dir: $ROOT/templates
database: { conninfo: "$CONNINFO" }
identity: { signing_key: $STATE/keys/jwt.pem }
routes:
  - { prefix: /, backend: "http://127.0.0.1:$BACKEND_PORT", name: bench }
YAML
"$BIN" migrate -c "$STATE/portier.yaml" >/dev/null 2>&1
LINK=$("$BIN" user invite bench -c "$STATE/portier.yaml" 2>/dev/null | tail -n 1)
"$BIN" serve -c "$STATE/portier.yaml" 2>"$STATE/portier.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -ksf "https://127.0.0.1:$PORTIER_PORT/healthz" >/dev/null && break; sleep 0.1; done

# Sign in through the setup link to get a real session cookie.
TOKEN=${LINK##*token=}
JAR=$STATE/jar
curl -ks -c "$JAR" -b "$JAR" "$LINK" -o "$STATE/setup.html"
CSRF=$(grep -o 'name="csrf" value="[^"]*"' "$STATE/setup.html" | sed 's/.*value="//; s/"$//')
PW="correct horse battery staple bench"
curl -ks -c "$JAR" -b "$JAR" -o /dev/null --data-urlencode "token=$TOKEN" --data-urlencode "csrf=$CSRF" \
    --data-urlencode "password=$PW" --data-urlencode "password_confirm=$PW" "https://127.0.0.1:$PORTIER_PORT/setup"
COOKIE=$(awk '$6 == "__Host-portier" { print $7 }' "$JAR")
[ -n "$COOKIE" ] || { echo "bench: could not obtain a session" >&2; tail "$STATE/portier.log" >&2; exit 1; }
code=$(curl -ks -o /dev/null -w '%{http_code}' -H "Cookie: __Host-portier=$COOKIE" "https://127.0.0.1:$PORTIER_PORT/x")
[ "$code" = 200 ] || { echo "bench: proxied request answered $code" >&2; exit 1; }

run() { # label url [header]
    local out
    if [ $# -ge 3 ]; then
        out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" -H "$3" "$2")
    else
        out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "$2")
    fi
    echo "$out" | grep -E 'Non-2xx|Socket errors' >&2 || true
    echo "$out" | awk '/Requests\/sec/ { print $2 }'
}
ROUNDS=${BENCH_ROUNDS:-3}
echo "wrk: $THREADS thread(s), $CONNS connections, ${DURATION}s per run, $ROUNDS interleaved rounds (medians)," \
     "$(nproc) cores shared by all processes"
A=(); B=(); C=()
for r in $(seq "$ROUNDS"); do
    A+=("$(run backend "http://127.0.0.1:$BACKEND_PORT/x")")
    B+=("$(run nginx-proxy "https://127.0.0.1:$PROXY_PORT/x")")
    C+=("$(run portier "https://127.0.0.1:$PORTIER_PORT/x" "Cookie: __Host-portier=$COOKIE")")
    echo "round $r: a=${A[-1]} b=${B[-1]} c=${C[-1]}"
done
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
A=$(median "${A[@]}"); B=$(median "${B[@]}"); C=$(median "${C[@]}")
printf '(a) backend direct        %10.0f req/s\n' "$A"
printf '(b) nginx TLS proxy       %10.0f req/s\n' "$B"
printf '(c) portier TLS + session %10.0f req/s\n' "$C"
awk -v a="$A" -v b="$B" -v c="$C" 'BEGIN { printf "c/a = %.2f\nc/b = %.2f (target >= 0.85)\n", c / a, c / b }'
# every proxied request above was served from the session cache: the query count is that of the sign-in only
curl -ks "https://127.0.0.1:$PORTIER_PORT/metrics" | grep -E '^portier_(db_queries|session_cache_hits)_total ' || true
