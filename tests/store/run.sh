#!/usr/bin/env bash
# Store integration test: starts a private PostgreSQL 15 (Unix socket in a fresh temporary directory, no TCP),
# builds tests/store/test_store.c with gcc against store/*.c and the embedded migrations, runs it against a
# fresh database, then stops PostgreSQL and removes the directory.
#
#   tests/store/run.sh              plain run
#   VALGRIND=1 tests/store/run.sh   also a second run under valgrind (leak check) on another fresh database
#   KEEP=1 tests/store/run.sh       keep the temporary directory (build products, server log)
#
# Uses scripts/pg.sh when it is there; otherwise initdb/pg_ctl inline (as the postgres user when root).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
WORK="$(mktemp -d /tmp/portier-store.XXXXXX)"
chmod 0755 "$WORK" # PostgreSQL runs as postgres: it must reach PG_DIR inside
PG_DIR="$WORK/pg"
started=0

as_pg() {
    if [[ "$(id -u)" -eq 0 ]]; then
        (cd "$PG_DIR" && runuser -u postgres -- "$@")
    else
        (cd "$PG_DIR" && "$@")
    fi
}

stop_pg() {
    ((started)) || return 0
    if [[ -x "$ROOT/scripts/pg.sh" ]]; then
        "$ROOT/scripts/pg.sh" stop "$PG_DIR" || true
    else
        as_pg "$PG_BIN/pg_ctl" stop -D "$PG_DIR/data" -m fast -w >/dev/null || true
    fi
}

cleanup() {
    stop_pg
    if [[ "${KEEP:-0}" == 1 ]]; then
        echo "run.sh: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# --- build ---
mapfile -t migrations < <(ls "$ROOT"/store/migrations/*.sql | sort)
files="$(IFS=';'; echo "${migrations[*]}")"
cmake -DOUT="$WORK/migrations.c" "-DFILES=$files" -P "$ROOT/store/embed_migrations.cmake"
CFLAGS=(-std=gnu11 -g -O1 -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers
        -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -I"$ROOT")
read -r -a PKG_CFLAGS <<<"$(pkg-config --cflags libpq openssl cmocka)"
read -r -a PKG_LIBS <<<"$(pkg-config --libs libpq openssl cmocka)"
gcc "${CFLAGS[@]}" "${PKG_CFLAGS[@]}" -o "$WORK/test_store" \
    "$ROOT"/tests/store/test_store.c "$ROOT"/store/*.c "$WORK/migrations.c" "${PKG_LIBS[@]}" -lpthread
echo "run.sh: built $WORK/test_store" >&2

# --- PostgreSQL ---
mkdir -p "$PG_DIR"
if [[ -x "$ROOT/scripts/pg.sh" ]]; then
    started=1
    conninfo="$("$ROOT/scripts/pg.sh" start "$PG_DIR" | tail -n 1)"
else
    [[ "$(id -u)" -ne 0 ]] || chown postgres: "$PG_DIR"
    as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U portier --auth=trust >"$WORK/initdb.log" 2>&1
    started=1
    as_pg "$PG_BIN/pg_ctl" start -D "$PG_DIR/data" -l "$PG_DIR/pg.log" -w \
        -o "-c listen_addresses='' -c unix_socket_directories=$PG_DIR" >/dev/null
    as_pg "$PG_BIN/createdb" -h "$PG_DIR" -U portier portier
    conninfo="host=$PG_DIR dbname=portier user=portier"
fi
echo "run.sh: PostgreSQL at $conninfo" >&2

# --- run ---
PORTIER_TEST_PG="$conninfo" "$WORK/test_store"

if [[ "${VALGRIND:-0}" == 1 ]]; then
    # A second fresh database: the test expects to apply the migrations itself.
    psql -X -q -v ON_ERROR_STOP=1 "$conninfo" -c "CREATE DATABASE portier_vg"
    vg_conninfo="${conninfo/dbname=portier/dbname=portier_vg}"
    PORTIER_TEST_PG="$vg_conninfo" valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --error-exitcode=99 "$WORK/test_store"
    echo "run.sh: valgrind run clean" >&2
fi
