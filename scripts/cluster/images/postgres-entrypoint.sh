#!/bin/bash
# PostgreSQL for the local cluster (Debian's package), with the part of the postgres image's
# entrypoint the manifests use: PGDATA, POSTGRES_PASSWORD for the superuser "postgres", the
# scripts in /docker-entrypoint-initdb.d run once against a fresh data directory over the local
# socket, and the arguments handed to postgres (`-c max_connections=...`).
set -euo pipefail
: "${PGDATA:?PGDATA is not set}"
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is not set}"
export PGUSER=postgres PGHOST=/var/run/postgresql

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    mkdir -p "$PGDATA"
    chmod 700 "$PGDATA"
    pwfile="$(mktemp)"
    printf '%s' "$POSTGRES_PASSWORD" >"$pwfile"
    initdb -D "$PGDATA" -U postgres --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256
    rm -f "$pwfile"
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    # The set-up scripts see a server on the socket alone.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
    for script in /docker-entrypoint-initdb.d/*; do
        case "$script" in
            *.sh) "$script" ;;
            *.sql) psql -v ON_ERROR_STOP=1 -f "$script" ;;
            *) ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
fi
exec postgres -c listen_addresses='*' "$@"
