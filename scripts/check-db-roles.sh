#!/usr/bin/env bash
# fleet-roles.sql as a managed server's admin runs it: a role with CREATEROLE and CREATEDB that is
# no superuser (Azure's flexible server, say). Against the PostgreSQL at DATABASE_ADMIN_URL, it
# makes such an admin, which creates a database and runs the script for two services twice;
# then each service's role works in its own schema and is refused the other's and public.
# --self-test: the script as it was (superuser-only attributes named in ALTER ROLE) must fail.
#
# usage: DATABASE_ADMIN_URL=postgres://superuser@host/postgres scripts/check-db-roles.sh [--self-test]
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
[[ -n "${DATABASE_ADMIN_URL:-}" ]] || die "DATABASE_ADMIN_URL is not set"

tag="check_$$"
admin="${tag}_admin" db="${tag}_fleet" secret="admin-$RANDOM$RANDOM"
work="$(mktemp -d)"
# The admin's URL: the superuser's, with the admin's name and password and a database.
url_as() { # ROLE PASSWORD DB
    python3 - "$DATABASE_ADMIN_URL" "$@" <<'PY'
import sys, urllib.parse as u
url, role, password, db = sys.argv[1:]
p = u.urlsplit(url)
host = p.hostname + (f":{p.port}" if p.port else "")
netloc = f"{u.quote(role, safe='')}:{u.quote(password, safe='')}@{host}"
print(u.urlunsplit((p.scheme, netloc, "/" + db, p.query, "")))
PY
}
su() { psql "$DATABASE_ADMIN_URL" -X -q -v ON_ERROR_STOP=1 "$@"; }
cleanup() {
    su -c "DROP DATABASE IF EXISTS $db" 2>/dev/null || true
    su -c "DROP ROLE IF EXISTS ${tag}_a, ${tag}_b, $admin" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

run_as_admin() { # SQL-FILE
    local role schema
    for pass in 1 2; do
        for role in a b; do
            psql "$(url_as "$admin" "$secret" "$db")" -X -q -v ON_ERROR_STOP=1 \
                -v role="${tag}_$role" -v schema="${tag}_$role" -v password="pw-$role" -f "$1" >/dev/null
        done
    done
}

check() { # SQL-FILE
    su -c "CREATE ROLE $admin LOGIN CREATEROLE CREATEDB NOSUPERUSER PASSWORD '$secret'"
    psql "$(url_as "$admin" "$secret" postgres)" -X -q -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db"
    run_as_admin "$1"
    local a b
    a="$(url_as "${tag}_a" pw-a "$db")" b="$(url_as "${tag}_b" pw-b "$db")"
    psql "$a" -X -q -v ON_ERROR_STOP=1 -c "CREATE TABLE books (id int); INSERT INTO books VALUES (1)"
    [[ "$(psql "$a" -X -At -c "SELECT count(*) FROM ${tag}_a.books")" == 1 ]] ||
        die "${tag}_a cannot read its own schema"
    local refused
    refused="$(psql "$b" -X -At -c "SELECT * FROM ${tag}_a.books" 2>&1 || true)"
    [[ "$refused" == *"permission denied for schema ${tag}_a"* ]] ||
        die "another service's role read ${tag}_a: $refused"
    refused="$(psql "$b" -X -At -c "CREATE TABLE public.spill (id int)" 2>&1 || true)"
    [[ "$refused" == *"permission denied for schema public"* ]] ||
        die "a service's role created a table in schema public: $refused"
    [[ "$(su -At -c "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = '${tag}_b'")" == f ]] ||
        die "${tag}_b holds attributes it must not"
}

sql="$FLEET_REPO/scripts/sql/fleet-roles.sql"
if [[ "${1:-}" == --self-test ]]; then
    # The script before it knew managed servers: superuser-only attributes in ALTER ROLE.
    sed 's/^ALTER ROLE :"role" WITH LOGIN NOCREATEDB NOCREATEROLE/ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS/' \
        "$sql" >"$work/broken.sql"
    ! cmp -s "$sql" "$work/broken.sql" || die "self-test: the broken copy is not broken"
    # Started outside an `if`, so that errexit holds inside it and its first failure ends it.
    (check "$work/broken.sql") >"$work/broken.log" 2>&1 &
    if wait $!; then
        die "self-test: fleet-roles.sql naming SUPERUSER in ALTER ROLE passed as a non-superuser"
    fi
    log "self-test 'superuser-only ALTER ROLE': refused as expected ($(grep -m1 -o 'must be superuser[^"]*' "$work/broken.log" || tail -n1 "$work/broken.log"))"
    cleanup
    work="$(mktemp -d)"
fi
check "$sql"
log "fleet-roles.sql works as a non-superuser admin with CREATEROLE and CREATEDB ($(su -At -c 'SHOW server_version'))"
