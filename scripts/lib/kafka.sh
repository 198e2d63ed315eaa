# shellcheck shell=bash
# Apache Kafka for local runs and tests: a real single-node broker (KRaft, broker and controller
# in one JVM) whose jars come from Maven Central. Source it; it sources common.sh itself.
#
# kafka_classpath             fetch the broker's jars (once; scripts/kafka/pom.xml pins them)
#                             into a cache beside the build directory and print the classpath.
# kafka_exec DATA PORT CPORT  format DATA if it is new, then exec the broker on 127.0.0.1:PORT
#                             (controller on CPORT). Never returns.
#                             Clients authenticate (SASL_PLAINTEXT): the services with
#                             SCRAM-SHA-512, each as its own principal; the super user `admin`
#                             (the broker itself, and the tools that create topics, credentials
#                             and ACLs) with PLAIN, its password FLEET_KAFKA_ADMIN_PASSWORD
#                             (default: a local development one, `admin`). The authorizer is on:
#                             what no ACL allows is refused (docs/operations.md, "Kafka's
#                             principals and ACLs").
#                             With FLEET_KAFKA_SASL_SSL_PORT and FLEET_KAFKA_TLS_DIR
#                             (scripts/lib/tls.sh's make_test_pki) the broker also has a SASL_SSL
#                             listener (PLAIN) for localhost.
#
# scripts/kafka.sh runs kafka_exec; the fleet's supervisor (tools/fleet) runs scripts/kafka.sh,
# waits for the broker and stops it.
#
# Java 17 or newer and Maven are needed; both are installed from Debian's packages when missing.

if [[ -n "${FLEET_KAFKA_SH_LOADED:-}" ]]; then
    return 0
fi
FLEET_KAFKA_SH_LOADED=1

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=scripts/lib/tls.sh
source "$(dirname "${BASH_SOURCE[0]}")/tls.sh"

FLEET_KAFKA_POM="$FLEET_REPO/scripts/kafka/pom.xml"

# The cache of broker jars, outside the clone beside the build directory (as the other tools'),
# one folder per version of the pom so that a change of version fetches afresh.
kafka_cache_dir() {
    printf '%s\n' "${FLEET_KAFKA_CACHE:-$(dirname "$CARGO_TARGET_DIR")/kafka}"
}

# The major version of `java` on PATH (8 for 1.8, 17 for 17.0.x), or nothing.
_java_major() {
    local version
    version="$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
    version="${version#1.}"
    printf '%s\n' "${version%%.*}"
}

_ensure_java_and_maven() {
    if ! command -v java >/dev/null 2>&1; then
        apt_install openjdk-17-jre-headless
    fi
    local major
    major="$(_java_major)"
    [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] ||
        die "Kafka's broker needs Java 17 or newer; 'java' on PATH is version '${major:-unknown}' (install openjdk-17-jre-headless, or put a newer java first on PATH)"
    need_cmd mvn maven
}

kafka_classpath() {
    local cache pom_hash libs
    cache="$(kafka_cache_dir)"
    pom_hash="$(short_hash "$(cat "$FLEET_KAFKA_POM")")"
    libs="$cache/libs-$pom_hash"
    if [[ ! -f "$libs/.complete" ]]; then
        _ensure_java_and_maven
        log "fetching Kafka's broker jars with Maven into $libs"
        rm -rf "$libs"
        mkdir -p "$libs"
        mvn -q -B -f "$FLEET_KAFKA_POM" -Dmaven.repo.local="$cache/m2" \
            dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs" >&2 ||
            die "Maven could not fetch Kafka's jars (see above); scripts/kafka/pom.xml pins them"
        touch "$libs/.complete"
    fi
    printf '%s\n' "$libs/*"
}

# _kafka_properties DATA PORT CPORT: the broker's configuration, written into DATA.
_kafka_properties() {
    local data="$1" port="$2" cport="$3"
    local listeners="SASL_PLAINTEXT://127.0.0.1:$port" advertised="SASL_PLAINTEXT://127.0.0.1:$port"
    local protocols="SASL_PLAINTEXT:SASL_PLAINTEXT" super_users="User:admin"
    local admin_password="${FLEET_KAFKA_ADMIN_PASSWORD:-admin}"
    [[ "$admin_password" != *'"'* && "$admin_password" != *'\\'* ]] ||
        die "FLEET_KAFKA_ADMIN_PASSWORD cannot hold a quote or a backslash (it goes into a JAAS line)"
    local admin_jaas="org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"$admin_password\" user_admin=\"$admin_password\";"
    if [[ -n "${FLEET_KAFKA_SASL_SSL_PORT:-}" ]]; then
        # Advertised by name: the clients check the certificate against it.
        listeners+=",SASL_SSL://127.0.0.1:$FLEET_KAFKA_SASL_SSL_PORT"
        advertised+=",SASL_SSL://localhost:$FLEET_KAFKA_SASL_SSL_PORT"
        protocols+=",SASL_SSL:SASL_SSL"
        # The managed-Kafka stand-in: one shared credential that may do anything, as a
        # namespace's connection string does (the TLS tests show the clients' side of it).
        super_users+=";User:fleet"
    fi
    # It holds the admin's password: readable by its owner alone, from the first byte.
    (umask 077 && : >"$data/server.properties")
    chmod 600 "$data/server.properties"
    cat >"$data/server.properties" <<EOF
# Written by scripts/lib/kafka.sh at every start: a single node that is broker and controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners,CONTROLLER://127.0.0.1:$cport
advertised.listeners=$advertised
listener.security.protocol.map=$protocols,CONTROLLER:SASL_PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_PLAINTEXT
# Every listener authenticates, the controller's too: an anonymous one would have to be a super
# user (the broker talks to its controller through it) and could then grant itself anything.
# The broker speaks to itself as admin with PLAIN, whose only user lives in this file, so it
# needs no stored credential and works on data formatted before; the services use SCRAM, whose
# credentials the admin stores in the cluster (dev-broker --ensure-topics-on --access).
sasl.mechanism.inter.broker.protocol=PLAIN
sasl.mechanism.controller.protocol=PLAIN
listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=$admin_jaas
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=$admin_jaas
# KRaft's authorizer: a request no ACL allows is refused, and only admin is above the rules.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=$super_users
# Below the data folder's root, which on a mounted volume may hold lost+found.
log.dirs=$data/logs
# Topics are created on purpose (dev-broker --ensure-topics-on, the test harness), never by a
# producer's first message.
auto.create.topics.enable=false
num.partitions=3
# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
# A group starts at once instead of waiting 3 s for more members; tests start many groups.
group.initial.rebalance.delay.ms=0
# A group without members keeps its offsets as long as the services keep inbox rows (30 days):
# lost offsets would re-read topics that keep every event (docs/operations.md, "Retention").
offsets.retention.minutes=43200
# After a crash the controller keeps the dead broker's registration until its session ends,
# and the broker cannot register again until then (DUPLICATE_BROKER_REGISTRATION): 3 s instead
# of 9 s, so that a killed broker is back in seconds. One node: no network to be patient with.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=1000
# Small index files: a test run creates thousands of partitions on this one broker.
log.index.size.max.bytes=1048576
EOF
    if [[ -n "${FLEET_KAFKA_SASL_SSL_PORT:-}" ]]; then
        local tls="$FLEET_KAFKA_TLS_DIR"
        cat >>"$data/server.properties" <<EOF
# The SASL_SSL listener of the TLS tests (scripts/lib/tls.sh): as a managed Kafka, TLS with a
# certificate for the advertised name, and PLAIN credentials.
ssl.keystore.type=PEM
ssl.keystore.location=$tls/server-keystore.pem
listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_fleet="$(cat "$tls/kafka-password")";
EOF
    fi
}

kafka_exec() {
    local data="$1" port="$2" cport="$3" classpath java_opts
    classpath="$(kafka_classpath)"
    mkdir -p "$data"
    data="$(cd "$data" && pwd -P)"
    _kafka_properties "$data" "$port" "$cport"
    java_opts=(-Xms256m "-Xmx${FLEET_KAFKA_HEAP:-1g}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
        -Djava.awt.headless=true "-Dlog4j2.configurationFile=$FLEET_REPO/scripts/kafka/log4j2.properties")
    if [[ ! -f "$data/logs/meta.properties" ]]; then
        log "formatting Kafka storage in $data/logs"
        # shellcheck disable=SC2086 # the classpath's wildcard is Java's, not the shell's
        java "${java_opts[@]}" -cp "$classpath" kafka.tools.StorageTool format \
            --config "$data/server.properties" --cluster-id "$(_kafka_cluster_id)" >&2 ||
            die "cannot format Kafka's storage in $data/logs"
    fi
    # Every partition keeps its log file open: take all the descriptors the system allows.
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    exec java "${java_opts[@]}" -cp "$classpath" kafka.Kafka "$data/server.properties"
}

# A KRaft cluster id: 16 random bytes, base64url without padding; never starting with '-',
# which the formatter would take for an option (Kafka's own ids avoid it for the same reason).
_kafka_cluster_id() {
    local id
    while :; do
        id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
        [[ "$id" == -* ]] || break
    done
    printf '%s\n' "$id"
}
