# shellcheck shell=bash
# PostgreSQL for local runs and tests: what the scripts need around the server that the fleet's
# supervisor (tools/fleet: `fleet up`, `fleet infra`) runs. Source it; it sources common.sh.
#
# ensure_postgres_installed  the server's programs, installed from Debian's package when missing
#                            (unless DATABASE_ADMIN_URL or PGHOST name a server to use), and psql
# psql_admin DB ARGS...      psql as the superuser of DATABASE_ADMIN_URL, on database DB
#
# The private cluster itself (target/postgres, 127.0.0.1:${FLEET_PG_PORT:-55432}, superuser
# postgres with password ${FLEET_PG_SUPERUSER_PASSWORD:-postgres}), the fleet database and its
# roles (each role's password is its name unless FLEET_DB_PASSWORD_<ROLE> says otherwise: local
# development defaults; deployments take theirs from a Secret) are the supervisor's:
# tools/fleet/src/database.rs.

if [[ -n "${FLEET_POSTGRES_SH_LOADED:-}" ]]; then
    return 0
fi
FLEET_POSTGRES_SH_LOADED=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

FLEET_PG_BIN="${FLEET_PG_BIN:-}"

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

ensure_postgres_installed() {
    if [[ -z "${DATABASE_ADMIN_URL:-}" && -z "${PGHOST:-}" ]] && ! _pg_server_bin_dir >/dev/null; then
        # Debian's package also creates and starts its own "main" cluster on port 5432; the
        # supervisor leaves it alone and runs its own.
        apt_install postgresql
        _pg_server_bin_dir >/dev/null || die "PostgreSQL server binaries not found"
    fi
    _pg_client psql >/dev/null
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

# --- the fleet database ----------------------------------------------------------------------

# psql_admin [DB] ARGS...: psql as the admin, quiet, stopping at the first error.
psql_admin() {
    local db="$1" psql
    shift
    psql="$(_pg_client psql)"
    "$psql" "$(_pg_url_with_db "$DATABASE_ADMIN_URL" "$db")" -X -q -v ON_ERROR_STOP=1 "$@"
}
