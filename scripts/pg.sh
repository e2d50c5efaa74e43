#!/usr/bin/env bash
# A private PostgreSQL 15 for the demo and the tests: no TCP port, a Unix socket in its own directory.
#
#   scripts/pg.sh start DIR      initdb (first time only) + start; prints the conninfo as the last stdout line
#   scripts/pg.sh stop DIR       fast shutdown (no error when it is not running)
#   scripts/pg.sh status DIR     exit 0 when running, 3 when not
#   scripts/pg.sh conninfo DIR   prints "host=DIR/socket dbname=portier user=portier"
#   scripts/pg.sh app-conninfo DIR  prints the same for the role portier runs as: user=portier_app
#
# Layout: DIR/data (cluster), DIR/socket (Unix socket; listen_addresses = ''), DIR/pg.log (server log).
# Superuser `portier` (owns the schema: `portier migrate` connects as it through database.admin_conninfo),
# login role `portier_app` (no superuser, owns nothing: the role portier serves as, database.conninfo; the
# migration grants it what it needs), local trust authentication, database `portier`. fsync, full_page_writes and
# synchronous_commit stay on: the durability tests rely on them.
#
# PostgreSQL refuses to run as root. As root, every server command runs as Debian's `postgres` user
# (`runuser -u postgres --`) and DIR is made owned by postgres, so DIR's parents must be traversable by
# that user: put DIR under /tmp or /var/lib, not under /root or a 0700 directory (e.g. pytest's
# /tmp/pytest-of-root). As a normal user everything runs as that user.
#
# Only the conninfo goes to stdout; all progress messages go to stderr.
set -euo pipefail

PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
PG_SUPERUSER=portier
PG_APP_ROLE=portier_app
PG_DATABASE=portier
START_TIMEOUT=60 # seconds

die() {
    echo "pg.sh: $*" >&2
    exit 1
}

usage() {
    echo "usage: $0 start|stop|status|conninfo|app-conninfo DIR" >&2
    exit 2
}

[[ $# -eq 2 ]] || usage
cmd="$1"
dir_arg="$2"
[[ -n "$dir_arg" ]] || usage

# Restrict DIR to characters that need no quoting in postgresql.conf or in a libpq conninfo.
[[ "$dir_arg" =~ ^[A-Za-z0-9/._+-]+$ ]] || die "DIR may contain only letters, digits and / . _ + - : '$dir_arg'"

# The socket file is DIR/socket/.s.PGSQL.5432; sun_path holds 107 bytes plus the terminating NUL.
check_socket_length() {
    if ((${#1} + 21 > 107)); then
        die "DIR is too long for a Unix socket path ($1/socket/.s.PGSQL.5432 > 107 bytes): choose a shorter DIR"
    fi
}

check_socket_length "$(realpath -m "$dir_arg")"
if [[ "$cmd" == start ]]; then
    mkdir -p "$dir_arg"
fi
if [[ -d "$dir_arg" ]]; then
    dir="$(cd "$dir_arg" && pwd -P)" # resolves symlinks too
    check_socket_length "$dir"
else
    dir="$(realpath -m "$dir_arg")"
fi
data="$dir/data"
sock="$dir/socket"
log="$dir/pg.log"
conninfo="host=$sock dbname=$PG_DATABASE user=$PG_SUPERUSER"

as_root=0
[[ "$(id -u)" -eq 0 ]] && as_root=1

# Runs a PostgreSQL command as the user that owns the cluster. The working directory is DIR so that the
# postgres user is never left in an unreadable cwd such as /root. fd 9 (the start lock) is closed so that
# the server does not inherit it and hold the lock for its whole life.
run_pg() {
    if ((as_root)); then
        (cd "$dir" && runuser -u postgres -- "$@" 9>&-)
    else
        (cd "$dir" && "$@" 9>&-)
    fi
}

# PID of the postmaster from postmaster.pid, or nothing.
postmaster_pid() {
    local pid=""
    if [[ -r "$data/postmaster.pid" ]]; then
        read -r pid <"$data/postmaster.pid" || true
    fi
    if [[ "$pid" =~ ^[0-9]+$ ]]; then
        echo "$pid"
    fi
}

# Process state letter (R, S, D, Z, ...) of a PID, or nothing when it does not exist.
proc_state() {
    sed -n 's/^State:[[:space:]]*\([A-Za-z]\).*/\1/p' "/proc/$1/status" 2>/dev/null || true
}

# Running = postmaster.pid names a live process. Not `pg_ctl status`: after `kill -9` the postmaster can stay a
# zombie for a while when PID 1 does not reap promptly (containers), and pg_ctl counts a zombie as running.
is_running() {
    local pid state
    pid="$(postmaster_pid)"
    [[ -n "$pid" ]] || return 1
    state="$(proc_state "$pid")"
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# After a crash whose postmaster is a zombie, PostgreSQL itself would refuse to start ("lock file already
# exists"): the zombie still answers kill(pid, 0). Remove those lock files; a live server is never touched.
remove_zombie_locks() {
    local pid
    pid="$(postmaster_pid)"
    [[ -n "$pid" && "$(proc_state "$pid")" == Z ]] || return 0
    echo "pg.sh: postmaster $pid is a zombie (killed); removing its stale lock files" >&2
    run_pg rm -f "$data/postmaster.pid" "$sock/.s.PGSQL.5432.lock"
}

# As root: hand DIR to postgres and check that postgres can reach it; name the first blocking parent.
prepare_dir_for_postgres() {
    id postgres >/dev/null 2>&1 || die "user 'postgres' does not exist: install Debian's postgresql package"
    chown postgres: "$dir"
    chmod 0750 "$dir"
    if ! runuser -u postgres -- test -x "$dir" -a -w "$dir"; then
        local p="" rest="${dir#/}"
        while [[ -n "$rest" ]]; do
            p="$p/${rest%%/*}"
            [[ "$rest" == */* ]] && rest="${rest#*/}" || rest=""
            if ! runuser -u postgres -- test -x "$p"; then
                die "the postgres user cannot enter $p (mode $(stat -c %a "$p"), owner $(stat -c %U "$p")): put the" \
                    "state directory under /tmp or /var/lib instead (PostgreSQL will not run as root)"
            fi
        done
        die "the postgres user cannot write to $dir"
    fi
}

initdb_once() {
    [[ -f "$data/PG_VERSION" ]] && return 0
    [[ -x "$PG_BIN/initdb" ]] || die "$PG_BIN/initdb not found: install postgresql (scripts/install-deps.sh demo)"
    echo "pg.sh: initdb $data" >&2
    run_pg "$PG_BIN/initdb" -D "$data" -U "$PG_SUPERUSER" --auth-local=trust --auth-host=reject \
        -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
        {
            cat "$dir/initdb.log" >&2
            die "initdb failed"
        }
    # Appended once, after initdb: the last setting in the file wins.
    run_pg tee -a "$data/postgresql.conf" >/dev/null <<EOF

# --- portier private instance (scripts/pg.sh) ---
listen_addresses = ''
unix_socket_directories = '$sock'
unix_socket_permissions = 0777
fsync = on
full_page_writes = on
synchronous_commit = on
max_connections = 200
logging_collector = off
log_line_prefix = '%m [%p] '
EOF
}

start() {
    if ((as_root)); then
        prepare_dir_for_postgres
    fi
    # Serialise concurrent start calls on the same DIR.
    exec 9>>"$dir/.pg.sh.lock"
    flock 9

    if ! is_running; then
        remove_zombie_locks
        initdb_once
        run_pg mkdir -p -m 0700 "$sock"
        echo "pg.sh: starting PostgreSQL in $dir (log: $log)" >&2
        if ! run_pg "$PG_BIN/pg_ctl" start -D "$data" -l "$log" -w -t "$START_TIMEOUT" >&2; then
            tail -n 20 "$log" >&2 || true
            die "PostgreSQL did not start (see $log)"
        fi
    fi

    local exists
    exists="$(run_pg "$PG_BIN/psql" -X -q -A -t -h "$sock" -U "$PG_SUPERUSER" -d postgres \
        -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DATABASE'")" || die "cannot connect to $sock"
    if [[ "$exists" != 1 ]]; then
        run_pg "$PG_BIN/psql" -X -q -h "$sock" -U "$PG_SUPERUSER" -d postgres -v ON_ERROR_STOP=1 \
            -c "CREATE DATABASE $PG_DATABASE" >&2 || die "CREATE DATABASE $PG_DATABASE failed"
    fi
    exists="$(run_pg "$PG_BIN/psql" -X -q -A -t -h "$sock" -U "$PG_SUPERUSER" -d postgres \
        -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_APP_ROLE'")" || die "cannot connect to $sock"
    if [[ "$exists" != 1 ]]; then
        run_pg "$PG_BIN/psql" -X -q -h "$sock" -U "$PG_SUPERUSER" -d postgres -v ON_ERROR_STOP=1 \
            -c "CREATE ROLE $PG_APP_ROLE LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE" >&2 ||
            die "CREATE ROLE $PG_APP_ROLE failed"
    fi
    echo "$conninfo"
}

stop() {
    if [[ ! -f "$data/PG_VERSION" ]]; then
        echo "pg.sh: no PostgreSQL cluster in $dir (no $data): nothing to stop" >&2
        return 0
    fi
    if ! is_running; then
        echo "pg.sh: PostgreSQL in $dir is not running" >&2
        return 0
    fi
    run_pg "$PG_BIN/pg_ctl" stop -D "$data" -m fast -w -t "$START_TIMEOUT" >&2
}

case "$cmd" in
    start) start ;;
    stop) stop ;;
    status)
        if is_running; then
            echo "pg.sh: running ($conninfo)" >&2
        else
            echo "pg.sh: not running" >&2
            exit 3
        fi
        ;;
    conninfo) echo "$conninfo" ;;
    app-conninfo) echo "${conninfo/user=$PG_SUPERUSER/user=$PG_APP_ROLE}" ;;
    *) usage ;;
esac
