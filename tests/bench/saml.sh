#!/usr/bin/env bash
# SAML IdP benchmark (not part of `make test`): signed SSO responses per second on ONE worker thread (= one
# core for lasso/xmlsec signing; the event loop and PostgreSQL take the other), measured with wrk against
# IdP-initiated SSO (/saml/idp/init?sp=...) with a valid session: each request looks the session up, checks the
# SP's policy, builds the assertion, signs it, records the SP sign-in and writes an audit event.
#   both:      Response and Assertion signed (the default; two RSA-2048 signatures)
#   assertion: Assertion signed only (sign: assertion; one signature)
# env BENCH_KEYINFO_CERT=false: signatures without the certificate in KeyInfo (saml.idp.keyinfo_certificate)
# Prints for each SP the rate on the wall clock and per core: over the time the worker thread was on a core
# (schedstat), so that other load on the shared machine does not count against it. Measured with
# `tests/bench/saml.sh 10 8` on the 2-core test machine under load 4.6-6.1 (README, Benchmarks), per core / wall:
#   keyinfo true:  both 831-838/s / 259-267/s, assertion 1261-1274/s / 348-360/s
#                  (before issue #6's key work: both 265-267/s / 147-185/s, assertion 406-421/s / 195-215/s)
#   keyinfo false: both 889-895/s / 307-401/s, assertion 1320-1357/s / 479-552/s
#                  (before: both 330-335/s / 156-206/s, assertion 523-531/s / 239-325/s)
# At load 0.6-2 the default (both, keyinfo true) reached 376-454/s on the wall clock. The target is >= 300/s per
# core with RSA-2048 for `both`.
# Usage: tests/bench/saml.sh [seconds] [connections]     env: PORTIER_BIN (default build/portier)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DURATION=${1:-10}
CONNS=${2:-8}
BIN=${PORTIER_BIN:-$ROOT/build/portier}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

STATE=$(mktemp -d /tmp/portier-saml-bench.XXXXXX)
chmod 755 "$STATE"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    "$ROOT/scripts/pg.sh" stop "$STATE/pg" >/dev/null 2>&1 || true
    rm -rf "$STATE"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
"$ROOT/scripts/gen-dev-keys.sh" "$STATE" >/dev/null
CONNINFO=$("$ROOT/scripts/pg.sh" start "$STATE/pg" | tail -n 1)

# the IdP's key (RSA-2048) and one SP (its metadata names only an ACS; nothing listens there)
(umask 077; openssl req -x509 -newkey rsa:2048 -nodes -keyout "$STATE/idp.key" -out "$STATE/idp.crt" -days 2 \
    -subj /CN=bench-idp 2>/dev/null)
(umask 077; openssl req -x509 -newkey rsa:2048 -nodes -keyout "$STATE/sp.key" -out "$STATE/sp.crt" -days 2 \
    -subj /CN=bench-sp 2>/dev/null)
SP_CERT=$(grep -v -- ----- "$STATE/sp.crt" | tr -d '\n')
for sp in both assertion; do
    cat > "$STATE/$sp.xml" <<XML
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"
    entityID="https://sp.bench/$sp">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>$SP_CERT</ds:X509Certificate>
    </ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
        Location="https://sp.bench/$sp/acs" index="0"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
XML
done
cat > "$STATE/portier.yaml" <<YAML
server:
  listen: { address: 127.0.0.1, port: $PORT }
  public_url: https://127.0.0.1:$PORT
  threads: 1
  workers: 1
  tls: { certificate: $STATE/tls/cert.pem, key: $STATE/tls/key.pem }
state_dir: $STATE
templates_dir: $ROOT/templates
database: { conninfo: "$CONNINFO" }
identity: { signing_key: $STATE/keys/jwt.pem }
saml:
  idp: { key: $STATE/idp.key, certificate: $STATE/idp.crt, keyinfo_certificate: ${BENCH_KEYINFO_CERT:-true} }
  service_providers:
    - { metadata: $STATE/both.xml, name: both, idp_initiated: true }
    - { metadata: $STATE/assertion.xml, name: assertion, idp_initiated: true, sign: assertion }
routes:
  - { prefix: /, backend: "http://127.0.0.1:9", name: bench }
YAML
"$BIN" migrate -c "$STATE/portier.yaml" >/dev/null 2>&1
LINK=$("$BIN" user invite bench --email bench@example.com --name "Bench User" --group staff -c "$STATE/portier.yaml" \
    2>/dev/null | tail -n 1)
"$BIN" serve -c "$STATE/portier.yaml" 2>"$STATE/portier.log" &
PIDS+=($!)
for _ in $(seq 100); do curl -ksf "https://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
TOKEN=${LINK##*token=}
JAR=$STATE/jar
curl -ks -c "$JAR" -b "$JAR" "$LINK" -o "$STATE/setup.html"
CSRF=$(grep -o 'name="csrf" value="[^"]*"' "$STATE/setup.html" | sed 's/.*value="//; s/"$//')
PW="correct horse battery staple bench"
curl -ks -c "$JAR" -b "$JAR" -o /dev/null --data-urlencode "token=$TOKEN" --data-urlencode "csrf=$CSRF" \
    --data-urlencode "password=$PW" --data-urlencode "password_confirm=$PW" "https://127.0.0.1:$PORT/setup"
COOKIE=$(awk '$6 == "__Host-portier" { print $7 }' "$JAR")
[ -n "$COOKIE" ] || { echo "bench: could not obtain a session" >&2; exit 1; }
for sp in both assertion; do
    body=$(curl -ks -H "Cookie: __Host-portier=$COOKIE" "https://127.0.0.1:$PORT/saml/idp/init?sp=$sp")
    grep -q "name=\"SAMLResponse\"" <<<"$body" || { echo "bench: no SAMLResponse for $sp: ${body:0:300}" >&2; tail -3 "$STATE/portier.log" >&2; exit 1; }
done

echo "wrk: 1 thread, $CONNS connections, ${DURATION}s per run; portier: 1 event loop, 1 worker; $(nproc) cores shared;" \
     "keyinfo_certificate: ${BENCH_KEYINFO_CERT:-true}; load average: $(cut -d' ' -f1 /proc/loadavg)"
# Per portier thread: "tid ns-on-a-core ns-waiting-for-a-core" (/proc/.../schedstat)
thread_times() { for t in /proc/"${PIDS[0]}"/task/*; do echo "${t##*/} $(cut -d' ' -f1,2 "$t/schedstat")"; done; }
for sp in both assertion; do
    before=$(thread_times)
    out=$(wrk -t1 -c"$CONNS" -d"${DURATION}s" -H "Cookie: __Host-portier=$COOKIE" \
        "https://127.0.0.1:$PORT/saml/idp/init?sp=$sp")
    after=$(thread_times)
    echo "$out" | grep -E 'Non-2xx|Socket errors' >&2 || true
    printf 'signed SSO responses/s on one worker (%-9s): %s\n' "$sp" "$(echo "$out" | awk '/Requests\/sec/ { print $2 }')"
    # per core: the responses over the time the busiest thread (the worker: lasso, signing, libpq) was on a core,
    # so that other load on the machine, which keeps it waiting for a core, does not count against it; the rest
    # of the run it waited for a core, or for PostgreSQL and the event loop
    requests=$(echo "$out" | awk '/requests in/ { print $1 }')
    join <(sort <<<"$before") <(sort <<<"$after") | awk -v n="$requests" -v sp="$sp" -v secs="$DURATION" '
        { run = $4 - $2; if (run > best) { best = run; wait = $5 - $3 } }
        END { if (best > 0) printf "  per core (%-9s): %.0f/s; the worker was on a core %.0f%% of the run, " \
                                   "waited for one %.0f%%\n", sp, n / (best / 1e9), 100 * best / 1e9 / secs,
                                   100 * wait / 1e9 / secs }'
done
curl -ks "https://127.0.0.1:$PORT/metrics" | grep -E '^portier_saml_assertions_total' || true
