# shellcheck shell=bash
# PostgreSQL for local runs and tests. Source it after common.sh (it sources common.sh itself).
#
# ensure_postgres           find or start a server; exports DATABASE_ADMIN_URL, FLEET_PG_HOST,
#                           FLEET_PG_PORT. In order of preference:
#                             1. DATABASE_ADMIN_URL, used as it is;
#                             2. libpq's PGHOST (with PGPORT, PGUSER, PGPASSWORD, PGDATABASE);
#                             3. a private cluster of this clone: data in target/postgres,
#                                127.0.0.1:${FLEET_PG_PORT:-55432}, superuser postgres with
#                                password ${FLEET_PG_SUPERUSER_PASSWORD:-postgres}.
# stop_private_postgres     stop the private cluster, only if ensure_postgres started it.
# create_fleet_database     database "fleet" with one role and one schema per service.
# service_database_url ROLE the DATABASE_URL a service connects with.
#
# The service passwords are local development defaults: each role's password is its name,
# unless FLEET_DB_PASSWORD_<ROLE> (e.g. FLEET_DB_PASSWORD_BOOK_SVC) says otherwise (the test
# harness assumes the defaults, so do not override them on a cluster the tests share). Real
# deployments take theirs from a Kubernetes Secret.

if [[ -n "${FLEET_POSTGRES_SH_LOADED:-}" ]]; then
    return 0
fi
FLEET_POSTGRES_SH_LOADED=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FLEET_DB_NAME="${FLEET_DB_NAME:-fleet}"

# Database role and schema of every service that has one. One line per service.
#                role         schema
FLEET_DB_ROLES=(
    "book_svc     book"    # book-management
    "rental_svc   rental"  # rental
    "payment_svc  payment" # payment
    "user_svc     users"   # user
    "view_svc     view"    # view
    "points_svc   points"  # points
)

FLEET_PG_STARTED_BY_US=""
FLEET_PG_BIN=""
FLEET_PG_DATA=""
FLEET_PG_SOCKET_DIR=""
FLEET_PG_URL_PARAMS=""

# --- binaries ------------------------------------------------------------------------------

# Newest server installation: /usr/lib/postgresql/<version>/bin, else initdb on PATH.
# _pg_server_bin_dir [VERSION]
_pg_server_bin_dir() {
    local want="${1:-}" d
    if [[ -n "$want" && -x "/usr/lib/postgresql/$want/bin/initdb" ]]; then
        printf '%s\n' "/usr/lib/postgresql/$want/bin"
        return 0
    fi
    while IFS= read -r d; do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]]; then
            printf '%s\n' "$d"
            return 0
        fi
    done < <(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -rV)
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        d="$(dirname "$(readlink -f "$(command -v initdb)")")"
        printf '%s\n' "$d"
        return 0
    fi
    return 1
}

# _pg_client NAME: path of a client program (psql, pg_isready), installed when missing.
_pg_client() {
    local name="$1" d
    if [[ -n "$FLEET_PG_BIN" && -x "$FLEET_PG_BIN/$name" ]]; then
        printf '%s\n' "$FLEET_PG_BIN/$name"
        return 0
    fi
    if d="$(_pg_server_bin_dir)" && [[ -x "$d/$name" ]]; then
        printf '%s\n' "$d/$name"
        return 0
    fi
    if ! command -v "$name" >/dev/null 2>&1; then
        apt_install postgresql-client >/dev/null
    fi
    command -v "$name" || die "$name not found"
}

# --- running as the cluster's owner --------------------------------------------------------

# PostgreSQL refuses to run as root, so as root the cluster belongs to the postgres OS user.
_pg_as_owner() {
    if [[ "$(id -u)" -ne 0 ]]; then
        "$@"
    elif command -v runuser >/dev/null 2>&1; then
        (cd / && runuser -u postgres -- "$@")
    else
        (cd / && su -s /bin/bash postgres -c "$(printf '%q ' "$@")")
    fi
}

_pg_ensure_os_user() {
    [[ "$(id -u)" -eq 0 ]] || return 0
    if ! id postgres >/dev/null 2>&1; then
        log "creating the postgres OS user"
        useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql \
            --shell /bin/bash postgres
    fi
}

# Can the cluster's owner reach into DIR?
_pg_owner_can_enter() {
    local dir="$1"
    [[ "$(id -u)" -ne 0 ]] && return 0
    _pg_as_owner test -x "$dir" 2>/dev/null
}

# --- where the private cluster lives --------------------------------------------------------

_pg_choose_dirs() {
    local data parent
    if [[ -n "${FLEET_PG_DATA_DIR:-}" ]]; then
        data="$FLEET_PG_DATA_DIR"
    else
        parent="$FLEET_REPO/target"
        mkdir -p "$parent"
        data="$parent/postgres"
        if ! _pg_owner_can_enter "$parent"; then
            # The clone lives where the postgres user cannot go (a 0700 home, say).
            data="${TMPDIR:-/tmp}/book-rental-fleet-pg-$(short_hash "$FLEET_REPO")"
            log "postgres cannot enter $parent; the private cluster lives in $data"
        fi
    fi
    parent="$(dirname "$data")"
    mkdir -p "$parent"
    FLEET_PG_DATA="$data"
    FLEET_PG_SOCKET_DIR="$parent/$(basename "$data")-socket"
    # A unix socket path has at most 107 bytes ("/.s.PGSQL.NNNNN" included).
    if ((${#FLEET_PG_SOCKET_DIR} > 90)); then
        FLEET_PG_SOCKET_DIR="${TMPDIR:-/tmp}/brf-pg-$(short_hash "$FLEET_PG_DATA")"
    fi
}

# --- ensure_postgres -----------------------------------------------------------------------

# Split DATABASE_ADMIN_URL into FLEET_PG_HOST, FLEET_PG_PORT and FLEET_PG_URL_PARAMS.
_pg_parse_admin_url() {
    local url="$1" rest authority hostport host port=""
    [[ "$url" == postgres://* || "$url" == postgresql://* ]] ||
        die "DATABASE_ADMIN_URL must be a postgres:// URL"
    rest="${url#*://}"
    FLEET_PG_URL_PARAMS=""
    if [[ "$rest" == *\?* ]]; then
        FLEET_PG_URL_PARAMS="${rest#*\?}"
        rest="${rest%%\?*}"
    fi
    authority="${rest%%/*}"
    hostport="${authority##*@}"
    if [[ "$hostport" == \[* ]]; then
        host="${hostport%%]*}]"
        port="${hostport#*]}"
        port="${port#:}"
    else
        host="${hostport%%:*}"
        [[ "$hostport" == *:* ]] && port="${hostport##*:}"
    fi
    FLEET_PG_HOST="${host:-localhost}"
    FLEET_PG_PORT="${port:-5432}"
}

# _pg_url_with_db URL DB: the same URL, connected to database DB.
_pg_url_with_db() {
    local url="$1" db="$2" scheme rest params="" authority
    scheme="${url%%://*}"
    rest="${url#*://}"
    if [[ "$rest" == *\?* ]]; then
        params="?${rest#*\?}"
        rest="${rest%%\?*}"
    fi
    authority="${rest%%/*}"
    printf '%s://%s/%s%s\n' "$scheme" "$authority" "$(urlencode "$db")" "$params"
}

_pg_start_private() {
    local port="${FLEET_PG_PORT:-55432}"
    local password="${FLEET_PG_SUPERUSER_PASSWORD:-postgres}"
    local version="" bin

    _pg_choose_dirs
    [[ -s "$FLEET_PG_DATA/PG_VERSION" ]] && version="$(cat "$FLEET_PG_DATA/PG_VERSION")"

    if ! bin="$(_pg_server_bin_dir "$version")"; then
        # Debian's package also creates and starts its own "main" cluster on port 5432; we leave
        # it alone and use ours.
        apt_install postgresql
        bin="$(_pg_server_bin_dir "$version")" || die "PostgreSQL server binaries not found"
    fi
    if [[ -n "$version" && "$bin" != "/usr/lib/postgresql/$version/bin" ]] &&
        ! "$bin/postgres" --version | grep -q " ${version}[.]"; then
        die "$FLEET_PG_DATA was made by PostgreSQL $version, which is not installed" \
            "(install postgresql-$version or remove that directory)"
    fi
    FLEET_PG_BIN="$bin"
    _pg_ensure_os_user

    if [[ -z "$version" ]]; then
        log "initialising a private PostgreSQL cluster in $FLEET_PG_DATA"
        local pwfile out
        mkdir -p "$FLEET_PG_DATA"
        chmod 0700 "$FLEET_PG_DATA"
        pwfile="$(mktemp)"
        printf '%s\n' "$password" >"$pwfile"
        if [[ "$(id -u)" -eq 0 ]]; then
            chown -R postgres:postgres "$FLEET_PG_DATA"
            chown postgres "$pwfile"
        fi
        if ! out="$(_pg_as_owner "$bin/initdb" -D "$FLEET_PG_DATA" -U postgres \
            --auth-local=trust --auth-host=scram-sha-256 --pwfile="$pwfile" \
            --encoding=UTF8 --no-locale --no-sync 2>&1)"; then
            rm -f "$pwfile"
            printf '%s\n' "$out" >&2
            die "initdb failed"
        fi
        rm -f "$pwfile"
    fi

    local status=0
    _pg_as_owner "$bin/pg_ctl" -D "$FLEET_PG_DATA" status >/dev/null 2>&1 || status=$?
    if [[ "$status" -eq 0 ]]; then
        # Already running (an earlier dev.sh, say): use it, and leave it running afterwards.
        local running_port
        running_port="$(sed -n 4p "$FLEET_PG_DATA/postmaster.pid" 2>/dev/null || true)"
        if [[ -n "$running_port" && "$running_port" != "$port" ]]; then
            warn "the private cluster is already running on port $running_port; using that"
            port="$running_port"
        fi
        log "private PostgreSQL already running (127.0.0.1:$port, $FLEET_PG_DATA)"
    else
        if [[ -z "${FLEET_PG_PORT:-}" ]]; then
            # The default port is taken (another clone's cluster, say): take the next free one.
            port="$(next_free_port "$port")"
        fi
        mkdir -p "$FLEET_PG_SOCKET_DIR"
        chmod 0700 "$FLEET_PG_SOCKET_DIR"
        [[ "$(id -u)" -eq 0 ]] && chown postgres:postgres "$FLEET_PG_SOCKET_DIR"
        local opts=(
            "-c port=$port"
            "-c listen_addresses=127.0.0.1"
            "-c unix_socket_directories='$FLEET_PG_SOCKET_DIR'"
            # Tuned for throw-away test data: no durability, many test connections.
            "-c fsync=off"
            "-c synchronous_commit=off"
            "-c full_page_writes=off"
            "-c max_connections=400"
            "-c shared_buffers=128MB"
        )
        log "starting private PostgreSQL on 127.0.0.1:$port ($FLEET_PG_DATA)"
        if ! _pg_as_owner "$bin/pg_ctl" -D "$FLEET_PG_DATA" -l "$FLEET_PG_DATA/server.log" \
            -w -t 30 -o "${opts[*]}" start >/dev/null; then
            tail -n 20 "$FLEET_PG_DATA/server.log" >&2 || true
            die "PostgreSQL did not start (log: $FLEET_PG_DATA/server.log;" \
                "is port $port taken? set FLEET_PG_PORT)"
        fi
        FLEET_PG_STARTED_BY_US=1
    fi

    FLEET_PG_HOST=127.0.0.1
    FLEET_PG_PORT="$port"
    # Plain text on the loopback: the cluster may serve TLS (scripts/lib/tls.sh turns it on for
    # the TLS tests' role), and sqlx's default `prefer` would take it for every connection.
    FLEET_PG_URL_PARAMS="sslmode=disable"
    DATABASE_ADMIN_URL="postgres://postgres:$(urlencode "$password")@$FLEET_PG_HOST:$FLEET_PG_PORT/postgres?$FLEET_PG_URL_PARAMS"
}

_pg_wait_ready() {
    local pg_isready deadline=$((SECONDS + ${FLEET_PG_WAIT_SECONDS:-30})) rc
    pg_isready="$(_pg_client pg_isready)"
    while :; do
        rc=0
        "$pg_isready" -q -d "$DATABASE_ADMIN_URL" -t 2 || rc=$?
        case "$rc" in
            0) return 0 ;;
            3) die "pg_isready rejects the connection parameters of DATABASE_ADMIN_URL" ;;
        esac
        if ((SECONDS >= deadline)); then
            die "PostgreSQL at $FLEET_PG_HOST:$FLEET_PG_PORT is not accepting connections after" \
                "${FLEET_PG_WAIT_SECONDS:-30}s"
        fi
        sleep 0.5
    done
}

ensure_postgres() {
    if [[ -n "${DATABASE_ADMIN_URL:-}" ]]; then
        log "PostgreSQL: using DATABASE_ADMIN_URL"
        _pg_parse_admin_url "$DATABASE_ADMIN_URL"
    elif [[ -n "${PGHOST:-}" ]]; then
        log "PostgreSQL: using PGHOST=$PGHOST"
        local host="$PGHOST" userinfo
        # A socket directory goes into the URL percent-encoded.
        [[ "$host" == /* ]] && host="$(urlencode "$host")"
        userinfo="$(urlencode "${PGUSER:-postgres}")"
        [[ -n "${PGPASSWORD:-}" ]] && userinfo+=":$(urlencode "$PGPASSWORD")"
        FLEET_PG_HOST="$host"
        FLEET_PG_PORT="${PGPORT:-5432}"
        FLEET_PG_URL_PARAMS=""
        DATABASE_ADMIN_URL="postgres://$userinfo@$FLEET_PG_HOST:$FLEET_PG_PORT/$(urlencode "${PGDATABASE:-postgres}")"
    else
        _pg_start_private
    fi
    export DATABASE_ADMIN_URL FLEET_PG_HOST FLEET_PG_PORT
    _pg_wait_ready
}

stop_private_postgres() {
    if [[ "$FLEET_PG_STARTED_BY_US" == 1 ]]; then
        log "stopping private PostgreSQL ($FLEET_PG_DATA)"
        _pg_as_owner "$FLEET_PG_BIN/pg_ctl" -D "$FLEET_PG_DATA" -m fast -w -t 30 stop \
            >/dev/null 2>&1 || warn "pg_ctl stop failed (log: $FLEET_PG_DATA/server.log)"
        FLEET_PG_STARTED_BY_US=""
    fi
}

# --- the fleet database ----------------------------------------------------------------------

# fleet_db_password ROLE: FLEET_DB_PASSWORD_<ROLE>, else the role's name (local-only default).
fleet_db_password() {
    local role="$1" var
    var="FLEET_DB_PASSWORD_${role^^}"
    printf '%s' "${!var:-$role}"
}

# psql_admin [DB] ARGS...: psql as the admin, quiet, stopping at the first error.
psql_admin() {
    local db="$1" psql
    shift
    psql="$(_pg_client psql)"
    "$psql" "$(_pg_url_with_db "$DATABASE_ADMIN_URL" "$db")" -X -q -v ON_ERROR_STOP=1 "$@"
}

create_fleet_database() {
    [[ -n "${DATABASE_ADMIN_URL:-}" ]] || die "create_fleet_database: run ensure_postgres first"
    log "database $FLEET_DB_NAME: one role and schema per service"
    psql_admin postgres -v db="$FLEET_DB_NAME" >/dev/null <<'SQL'
SELECT format('CREATE DATABASE %I', :'db')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')
\gexec
SQL
    local line role schema
    for line in "${FLEET_DB_ROLES[@]}"; do
        read -r role schema <<<"$line"
        psql_admin "$FLEET_DB_NAME" -v role="$role" -v schema="$schema" \
            -v password="$(fleet_db_password "$role")" \
            -f "$FLEET_REPO/scripts/sql/fleet-roles.sql" >/dev/null
    done
}

# service_database_url ROLE: postgres://ROLE:PASSWORD@host:port/fleet
service_database_url() {
    local role="$1"
    [[ -n "${FLEET_PG_HOST:-}" ]] || die "service_database_url: run ensure_postgres first"
    printf 'postgres://%s:%s@%s:%s/%s%s\n' "$(urlencode "$role")" \
        "$(urlencode "$(fleet_db_password "$role")")" "$FLEET_PG_HOST" "$FLEET_PG_PORT" \
        "$FLEET_DB_NAME" "${FLEET_PG_URL_PARAMS:+?$FLEET_PG_URL_PARAMS}"
}
