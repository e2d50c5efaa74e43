#!/usr/bin/env bash
# Development keys for the demo and the tests (never for production), made with the openssl CLI:
#
#   DIR/tls/key.pem + DIR/tls/cert.pem   self-signed EC P-256 server certificate for localhost
#                                        (SAN DNS:localhost, IP:127.0.0.1; 825 days)
#   DIR/keys/jwt.pem                     EC P-256 private key (PKCS#8) that signs the backend JWTs
#
# Existing files are kept (a second run changes nothing), so browsers and sessions survive restarts.
# Key files are mode 0600 and the directories 0700.
#
#   usage: scripts/gen-dev-keys.sh DIR
set -euo pipefail

[[ $# -eq 1 && -n "$1" ]] || {
    echo "usage: $0 DIR" >&2
    exit 2
}
dir="$1"
umask 077

CERT_DAYS=825 # the longest validity Apple/Chromium accept for a TLS server certificate

mkdir -p "$dir/tls" "$dir/keys"
chmod 0700 "$dir/tls" "$dir/keys"

tls_key="$dir/tls/key.pem"
tls_cert="$dir/tls/cert.pem"
jwt_key="$dir/keys/jwt.pem"

if [[ ! -s "$tls_key" || ! -s "$tls_cert" ]]; then
    echo "gen-dev-keys: creating $tls_cert (self-signed, CN=localhost)" >&2
    rm -f "$tls_key.tmp" "$tls_cert.tmp"
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 \
        -days "$CERT_DAYS" -subj "/CN=localhost" \
        -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -addext "basicConstraints=critical,CA:FALSE" \
        -addext "extendedKeyUsage=serverAuth" \
        -keyout "$tls_key.tmp" -out "$tls_cert.tmp" 2>/dev/null
    chmod 0600 "$tls_key.tmp" "$tls_cert.tmp"
    mv -f "$tls_key.tmp" "$tls_key"
    mv -f "$tls_cert.tmp" "$tls_cert"
fi

if [[ ! -s "$jwt_key" ]]; then
    echo "gen-dev-keys: creating $jwt_key (EC P-256, PKCS#8)" >&2
    rm -f "$jwt_key.tmp"
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve \
        -out "$jwt_key.tmp"
    chmod 0600 "$jwt_key.tmp"
    mv -f "$jwt_key.tmp" "$jwt_key"
fi

# Also tighten files left by an older run or copied in with a loose umask.
chmod 0600 "$tls_key" "$tls_cert" "$jwt_key"
