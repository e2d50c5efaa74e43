#!/usr/bin/env bash
# SCIM benchmark (not part of `make test`): a private PostgreSQL with 100,000 users (each with a SCIM document:
# name, emails, enterprise department), one portier, one SCIM token, then wrk over TLS:
#   (1) GET /Users?filter=userName eq "<random existing user>": latency percentiles (target p99 < 10 ms)
#   (2) POST /Users (new user each time, audit row in the same transaction): creates/s
#   (3) PATCH /Users/<random id> replace title (lock, diff, audit, NOTIFY in one transaction): PATCH/s
# Every answer must be 2xx: wrk's "Non-2xx" line is printed when it is not.
# Usage: tests/bench/scim.sh [seconds] [connections]
# env: PORTIER_BIN (default build/portier), BENCH_USERS (100000), BENCH_ROUNDS (1), BENCH_LOG (copy of the log)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DURATION=${1:-10}
CONNS=${2:-16}
USERS=${BENCH_USERS:-100000}
BIN=${PORTIER_BIN:-$ROOT/build/portier}
THREADS=${BENCH_WRK_THREADS:-$(nproc)}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

STATE=$(mktemp -d /tmp/portier-scim-bench.XXXXXX)
chmod 755 "$STATE"
PID=
cleanup() {
    [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null || true
    cp "$STATE/portier.log" "${BENCH_LOG:-/dev/null}" 2>/dev/null || true
    "$ROOT/scripts/pg.sh" stop "$STATE/pg" >/dev/null 2>&1 || true
    rm -rf "$STATE"
}
trap cleanup EXIT

PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$ROOT/scripts/gen-dev-keys.sh" "$STATE" >/dev/null
CONNINFO=$("$ROOT/scripts/pg.sh" start "$STATE/pg" | tail -n 1)
cat > "$STATE/portier.yaml" <<YAML
server:
  listen: { address: 127.0.0.1, port: $PORT }
  public_url: https://127.0.0.1:$PORT
  tls: { certificate: $STATE/tls/cert.pem, key: $STATE/tls/key.pem }
state_dir: $STATE
templates_dir: $ROOT/templates
database: { conninfo: "$CONNINFO" }
identity: { signing_key: $STATE/keys/jwt.pem }
routes:
  - { prefix: /, backend: "http://127.0.0.1:9", name: bench }
YAML
"$BIN" migrate -c "$STATE/portier.yaml" >/dev/null 2>&1
psql -X -q -v ON_ERROR_STOP=1 "$CONNINFO" -c "
INSERT INTO users (username, email, display_name, external_id, scim)
SELECT 'user' || i || '@example.com', 'user' || i || '@example.com', 'User ' || i, 'ext-' || i,
       jsonb_build_object('name', jsonb_build_object('givenName', 'User', 'familyName', i::text),
                          'emails', jsonb_build_array(jsonb_build_object('value', 'user' || i || '@example.com',
                                                                         'type', 'work', 'primary', true)),
                          'urn:ietf:params:scim:schemas:extension:enterprise:2.0:User',
                          jsonb_build_object('department', 'dept' || (i % 50)))
FROM generate_series(1, $USERS) i;" -c "ANALYZE users;"
export SCIM_TOKEN
SCIM_TOKEN=$("$BIN" scim-token create bench -c "$STATE/portier.yaml" 2>/dev/null | tail -n 1)
export BENCH_USERS=$USERS
"$BIN" serve -c "$STATE/portier.yaml" 2>"$STATE/portier.log" &
PID=$!
for _ in $(seq 100); do curl -ksf "https://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

cat > "$STATE/lookup.lua" <<'LUA'
local token = os.getenv("SCIM_TOKEN")
local users = tonumber(os.getenv("BENCH_USERS"))
request = function()
    local path = "/scim/v2/Users?filter=userName%20eq%20%22user" .. math.random(1, users) .. "%40example.com%22"
    return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end
LUA
cat > "$STATE/create.lua" <<'LUA'
local token = os.getenv("SCIM_TOKEN")
local counter, id, run = 0, 0, os.time() -- run: user names stay unique across rounds
setup = function(thread) thread:set("tid", id); id = id + 1 end
request = function()
    counter = counter + 1
    local body = '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"new-' .. run .. '-' .. tid ..
        '-' .. counter .. '@example.com","name":{"givenName":"New","familyName":"User"},"emails":[{"value":"new-' ..
        tid .. '-' .. counter .. '@example.com","type":"work","primary":true}]}'
    return wrk.format("POST", "/scim/v2/Users", {["Authorization"] = "Bearer " .. token,
                      ["Content-Type"] = "application/scim+json"}, body)
end
LUA
cat > "$STATE/patch.lua" <<'LUA'
local token = os.getenv("SCIM_TOKEN")
local users = tonumber(os.getenv("BENCH_USERS"))
local n = 0
request = function()
    n = n + 1
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace",' ..
        '"path":"title","value":"Title ' .. n .. '"}]}'
    return wrk.format("PATCH", "/scim/v2/Users/" .. math.random(1, users), {["Authorization"] = "Bearer " .. token,
                      ["Content-Type"] = "application/scim+json"}, body)
end
LUA

run() { # label script
    local out
    out=$(wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$2" "https://127.0.0.1:$PORT")
    echo "$out" | grep -E 'Non-2xx|Socket errors' || true
    printf '%-44s %8s req/s   p50 %-8s p90 %-8s p99 %s\n' "$1" "$(echo "$out" | awk '/Requests\/sec/ { print $2 }')" \
        "$(echo "$out" | awk '$1 == "50%" { print $2 }')" "$(echo "$out" | awk '$1 == "90%" { print $2 }')" \
        "$(echo "$out" | awk '$1 == "99%" { print $2 }')"
}
echo "$USERS users; wrk: $THREADS thread(s), $CONNS connections, ${DURATION}s per run; $(nproc) cores shared"
for _ in $(seq "${BENCH_ROUNDS:-1}"); do
    run 'GET filter=userName eq (random user)' "$STATE/lookup.lua"
    run 'POST /Users (create + audit)' "$STATE/create.lua"
    run 'PATCH /Users/{id} replace title (+ audit)' "$STATE/patch.lua"
done
AUDIT=$(psql -X -A -t "$CONNINFO" -c "SELECT count(*) FROM audit_events WHERE actor = 'scim:bench'")
echo "audit events written by scim:bench: $AUDIT"
