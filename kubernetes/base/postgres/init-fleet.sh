#!/usr/bin/env bash
# Creates database "fleet" and one login role and schema per service (fleet-roles.sql, a copy of
# scripts/sql/fleet-roles.sql), each role's password from its Secret. Idempotent.
#
# In the in-cluster PostgreSQL it runs once, from /docker-entrypoint-initdb.d, connected through
# the local socket. Against a managed server (Job fleet-db-init, components/managed-postgres) it
# connects with libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD, PGSSLMODE and PGSSLROOTCERT.
set -euo pipefail

sql="${FLEET_ROLES_SQL:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/fleet-roles.sql}"
psql_admin() { psql -v ON_ERROR_STOP=1 --no-psqlrc -q "$@"; }

if [[ "$(psql_admin -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'fleet'")" != 1 ]]; then
    psql_admin -d postgres -c 'CREATE DATABASE fleet'
fi

# role schema password-variable
while read -r role schema variable; do
    password="${!variable:?$variable is not set}"
    psql_admin -d fleet -v role="$role" -v schema="$schema" -v password="$password" \
        -f "$sql"
    echo "fleet: role $role owns schema $schema"
done <<'SERVICES'
book_svc book BOOK_SVC_PASSWORD
rental_svc rental RENTAL_SVC_PASSWORD
payment_svc payment PAYMENT_SVC_PASSWORD
user_svc users USER_SVC_PASSWORD
view_svc view VIEW_SVC_PASSWORD
points_svc points POINTS_SVC_PASSWORD
SERVICES
