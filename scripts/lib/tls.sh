# shellcheck shell=bash
# TLS for the test command: a certificate authority made afresh for each run, PostgreSQL serving
# TLS with a certificate it signed, and the Kafka broker's SASL_SSL listener. crates/service's
# `tls` tests connect through them the way a deployment reaches a managed server
# (`sslmode=verify-full`, `SASL_SSL`). Source it; it sources common.sh itself.
#
# make_test_pki DIR           a CA (DIR/ca.pem), a server certificate it signs for the name
#                             `localhost` alone (DIR/server.pem, DIR/server.key) and another CA
#                             that signs nothing (DIR/other-ca.pem)
# enable_postgres_tls DIR     the private cluster serves TLS with DIR's server certificate, and
#                             role fleet_tls may connect over TLS alone; exports FLEET_TLS_PG_URL
#
# The broker's SASL_SSL listener is the supervisor's (`fleet infra --tls-dir DIR`), which writes
# its address and credentials (FLEET_TLS_KAFKA_*) into the tests' environment.

if [[ -n "${FLEET_TLS_SH_LOADED:-}" ]]; then
    return 0
fi
FLEET_TLS_SH_LOADED=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

make_test_pki() {
    local dir="$1"
    need_cmd openssl
    rm -rf "$dir"
    mkdir -p "$dir"
    (
        cd "$dir"
        local ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
        openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 2 \
            -subj "/CN=book-rental-fleet test CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req -x509 "${ec[@]}" -keyout other-ca.key -out other-ca.pem -days 2 \
            -subj "/CN=book-rental-fleet other CA" \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        openssl req "${ec[@]}" -keyout server.key -out server.csr -subj "/CN=localhost" 2>/dev/null
        # The name alone, no address: connecting to 127.0.0.1 must fail verify-full.
        printf '%s\n' "subjectAltName=DNS:localhost" "basicConstraints=CA:FALSE" \
            "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" >server.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
            -out server.pem -days 2 -extfile server.ext 2>/dev/null
        # Kafka's PEM key store: the key (PKCS#8, unencrypted) then the chain.
        cat server.key server.pem ca.pem >server-keystore.pem
        rm -f ca.key other-ca.key server.csr ca.srl
    ) || die "cannot make the test certificates in $dir"
    export FLEET_TLS_CA="$dir/ca.pem" FLEET_TLS_OTHER_CA="$dir/other-ca.pem"
}

enable_postgres_tls() {
    local dir="$1" password
    [[ -n "${FLEET_PG_DATA:-}" && -d "$FLEET_PG_DATA" ]] ||
        die "TLS can be turned on only in the private cluster (DATABASE_ADMIN_URL names another)"
    # The server reads its key only if its owner alone can.
    install -m 0600 "$dir/server.pem" "$FLEET_PG_DATA/fleet-tls-server.pem"
    install -m 0600 "$dir/server.key" "$FLEET_PG_DATA/fleet-tls-server.key"
    [[ "$(id -u)" -eq 0 ]] &&
        chown postgres:postgres "$FLEET_PG_DATA"/fleet-tls-server.{pem,key}
    local hba="$FLEET_PG_DATA/pg_hba.conf"
    if ! grep -q '^# fleet_tls:' "$hba"; then
        local rules
        rules="$(printf '%s\n' \
            "# fleet_tls: over TLS alone, as a managed server that requires secure transport" \
            "hostssl all fleet_tls 127.0.0.1/32 scram-sha-256" \
            "hostnossl all fleet_tls all reject")"
        _pg_as_owner bash -c 'printf "%s\n" "$1" | cat - "$2" >"$2.new" && mv "$2.new" "$2"' \
            _ "$rules" "$hba"
    fi
    password="$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')"
    psql_admin postgres -v ON_ERROR_STOP=1 -q >/dev/null <<SQL || die "cannot turn TLS on"
ALTER SYSTEM SET ssl = on;
ALTER SYSTEM SET ssl_cert_file = 'fleet-tls-server.pem';
ALTER SYSTEM SET ssl_key_file = 'fleet-tls-server.key';
SELECT pg_reload_conf();
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fleet_tls') THEN
    CREATE ROLE fleet_tls LOGIN;
  END IF;
END \$\$;
ALTER ROLE fleet_tls PASSWORD '$password';
SQL
    # A reload is asynchronous: wait until new connections get TLS.
    local deadline=$((SECONDS + 10))
    until [[ "$(psql_admin "postgres" -At -c 'SHOW ssl' 2>/dev/null)" == on ]]; do
        ((SECONDS < deadline)) || die "PostgreSQL did not turn TLS on (log: $FLEET_PG_DATA/server.log)"
        sleep 0.2
    done
    export FLEET_TLS_PG_URL="postgres://fleet_tls:$password@localhost:$FLEET_PG_PORT/postgres"
}
