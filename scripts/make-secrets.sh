#!/usr/bin/env bash
# Make one deployment's secrets, once: the key that signs access tokens, the manager's password,
# rental's client secret and each service's Kafka credentials. Nothing of the kind is committed, and the user service refuses the
# ones that once were; each deployment (dev.sh's, compose's, a kind cluster's) makes its own.
# Files already in DIR are kept, so running it again changes nothing; delete them for new ones.
#
# usage: scripts/make-secrets.sh DIR
#   DIR/jwt-signing-key.pem   JWT_SIGNING_KEY: a 2048-bit RSA private key, PKCS#8 PEM
#   DIR/manager.env           MANAGER_EMAIL, MANAGER_PASSWORD (printed when made)
#   DIR/rental-client.env     RENTAL_CLIENT_SECRET: for the user service and rental alike
#   DIR/postgres-admin.env    POSTGRES_PASSWORD: the in-cluster PostgreSQL's superuser (Kubernetes)
#   DIR/<service>-db.env      DATABASE_URL and password of each service's role on the in-cluster
#                             PostgreSQL (Kubernetes: the Secrets <service>-db)
#   DIR/kafka-<service>.env   KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD: the service's own Kafka
#                             principal (SCRAM),
#                             one file per service that uses Kafka
#   DIR/kafka-admin.env       FLEET_KAFKA_ADMIN_PASSWORD (the broker's super user) and every
#                             service's FLEET_KAFKA_PASSWORD_<SERVICE>: for the broker and the
#                             job that stores the credentials and ACLs (dev-broker --access)
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

[[ $# -eq 1 && "$1" != -* ]] || {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 2
}
dir="$1"
need_cmd openssl
mkdir -p "$dir"
chmod 700 "$dir"
umask 077

if [[ ! -s "$dir/jwt-signing-key.pem" ]]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/jwt-signing-key.pem" 2>/dev/null
    log "made a token signing key: $dir/jwt-signing-key.pem"
fi
if [[ ! -s "$dir/rental-client.env" ]]; then
    echo "RENTAL_CLIENT_SECRET=$(openssl rand -hex 32)" >"$dir/rental-client.env"
    log "made rental's client secret: $dir/rental-client.env"
fi
if [[ ! -s "$dir/manager.env" ]]; then
    # 96 random bits, in letters and digits so it pastes anywhere.
    password="$(openssl rand -base64 12 | tr '+/' 'xy')"
    printf 'MANAGER_EMAIL=%s\nMANAGER_PASSWORD=%s\n' "${FLEET_MANAGER_EMAIL:-manager@fleet.example}" \
        "$password" >"$dir/manager.env"
    log "made the manager's password: $dir/manager.env"
fi
# The in-cluster PostgreSQL's passwords (Kubernetes), for Secrets postgres-admin and
# <service>-db: none is committed, so a cluster never runs on passwords anyone can read.
if [[ ! -s "$dir/postgres-admin.env" ]]; then
    echo "POSTGRES_PASSWORD=$(openssl rand -hex 24)" >"$dir/postgres-admin.env"
    log "made the in-cluster PostgreSQL's admin password: $dir/postgres-admin.env"
fi
for pair in rental:rental_svc payment:payment_svc book-management:book_svc user:user_svc \
    view:view_svc points:points_svc; do
    service="${pair%%:*}" role="${pair#*:}"
    if [[ ! -s "$dir/$service-db.env" ]]; then
        password="$(openssl rand -hex 24)"
        printf 'DATABASE_URL=postgres://%s:%s@postgres:5432/fleet\npassword=%s\n' \
            "$role" "$password" "$password" >"$dir/$service-db.env"
        log "made $service's database password: $dir/$service-db.env"
    fi
done
# Kafka: a principal per service (shared-events/src/access.rs lists them), each password made
# once; kafka-admin.env is written again from them, so the two always agree.
kafka_services=(book-management rental payment user view points)
for service in "${kafka_services[@]}"; do
    if [[ ! -s "$dir/kafka-$service.env" ]]; then
        printf 'KAFKA_SASL_USERNAME=%s\nKAFKA_SASL_PASSWORD=%s\n' "$service" "$(openssl rand -hex 24)" \
            >"$dir/kafka-$service.env"
        log "made $service's Kafka credentials: $dir/kafka-$service.env"
    fi
done
if [[ ! -s "$dir/kafka-admin.password" ]]; then
    openssl rand -hex 24 >"$dir/kafka-admin.password"
fi
{
    echo "FLEET_KAFKA_ADMIN_PASSWORD=$(cat "$dir/kafka-admin.password")"
    for service in "${kafka_services[@]}"; do
        variable="FLEET_KAFKA_PASSWORD_$(tr 'a-z-' 'A-Z_' <<<"$service")"
        echo "$variable=$(sed -n 's/^KAFKA_SASL_PASSWORD=//p' "$dir/kafka-$service.env")"
    done
} >"$dir/kafka-admin.env"
# shellcheck disable=SC1091
manager="$(. "$dir/manager.env" && echo "$MANAGER_EMAIL / $MANAGER_PASSWORD")"
log "the manager signs in as $manager"
