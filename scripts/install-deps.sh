#!/usr/bin/env bash
# Installs the Debian 12 packages portier needs, and nothing else.
#
#   scripts/install-deps.sh build   compilers and -dev libraries: enough for `make build`
#   scripts/install-deps.sh demo    build + PostgreSQL, openssl, curl, python3: enough for `make demo`
#   scripts/install-deps.sh test    demo + everything the unit, e2e, browser, fuzz and bench tests use
#
# A second run must be quick: installed packages are checked with one dpkg-query call, and apt-get (update
# and install) runs only when something is missing. Works as root or as a normal user with sudo.
# In test mode it also runs `npm install` in tests/browser when that directory has a package.json and no
# node_modules yet.
set -euo pipefail

mode="${1:-test}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"

build_pkgs=(
    build-essential cmake pkg-config
    libh2o-evloop-dev libssl-dev libpq-dev libsodium-dev libjansson-dev libyaml-dev
    liboath-dev libqrencode-dev libcurl4-openssl-dev libunistring-dev libcmocka-dev liblasso3-dev libxml2-dev libxmlsec1-dev
    zlib1g-dev
)
demo_pkgs=(postgresql openssl curl python3)
test_pkgs=(
    python3-jwt python3-cryptography python3-requests python3-pytest python3-pyotp python3-argon2 python3-h2 python3-aiosmtpd wamerican
    oathtool john-data chromium clang clang-format libclang-rt-14-dev valgrind wrk nginx-light
    nghttp2-client zbar-tools imagemagick
    apache2 libapache2-mod-auth-mellon libapache2-mod-shib python3-onelogin-saml2 xmlsec1 python3-lxml python3-xmlsec python3-pysaml2
    simplesamlphp php-cli php-xml php-mbstring php-curl
)

case "$mode" in
    build) wanted=("${build_pkgs[@]}") ;;
    demo) wanted=("${build_pkgs[@]}" "${demo_pkgs[@]}") ;;
    test) wanted=("${build_pkgs[@]}" "${demo_pkgs[@]}" "${test_pkgs[@]}") ;;
    *)
        echo "usage: $0 build|demo|test" >&2
        exit 2
        ;;
esac

# Node.js may come from elsewhere (e.g. NodeSource, which bundles npm): only ask Debian for it when `node`
# is missing altogether.
if [[ "$mode" == test ]] && ! command -v node >/dev/null 2>&1; then
    wanted+=(nodejs npm)
fi

# Packages whose status is "ii" (installed, configured). Unknown names make dpkg-query exit 1: ignore that.
declare -A have=()
while read -r name status; do
    [[ "$status" == ii ]] && have["$name"]=1
done < <(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "${wanted[@]}" 2>/dev/null || true)

missing=()
for p in "${wanted[@]}"; do
    [[ -n "${have[$p]:-}" ]] || missing+=("$p")
done

if ((${#missing[@]} > 0)); then
    echo "install-deps ($mode): installing ${missing[*]}" >&2
    if [[ "$(id -u)" -eq 0 ]]; then
        sudo=()
    elif command -v sudo >/dev/null 2>&1; then
        sudo=(sudo)
    else
        echo "install-deps: missing packages (${missing[*]}) and no sudo: run this script as root" >&2
        exit 1
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q update
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold install "${missing[@]}"
else
    echo "install-deps ($mode): all ${#wanted[@]} packages present" >&2
fi

if [[ "$mode" == test ]]; then
    command -v npm >/dev/null 2>&1 || {
        echo "install-deps: node is installed but npm is not; install npm for the browser tests" >&2
        exit 1
    }
    browser="$repo/tests/browser"
    if [[ -f "$browser/package.json" && ! -d "$browser/node_modules" ]]; then
        echo "install-deps: npm install in tests/browser" >&2
        (cd "$browser" && npm install --no-audit --no-fund)
    fi
fi
