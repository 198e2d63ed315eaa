#!/usr/bin/env bash
# Bring the whole fleet up on this machine, infrastructure included: PostgreSQL (database
# "fleet", one role and schema per service), Apache Kafka (the fleet's topics and their
# dead-letter twins) and every service built in the workspace. Ctrl-C (or SIGTERM) stops all of
# it again.
#
# usage: scripts/dev.sh [--no-build | --build-only] [--release | --profiling] [--fresh] [--kafka real|mock]
#                       [--with-prometheus] [--with-tracing]
#   --no-build          use the binaries already in $CARGO_TARGET_DIR/debug (or release, profiling)
#   --build-only        build the binaries where this script runs them from (and Jaeger, with
#                       --with-tracing), then exit
#   --release           build and run optimised binaries (for load runs: siege/run uses it)
#   --profiling         the release build with symbols and frame pointers, in its own directory
#                       (for perf: siege/run report --profile-cpu uses it)
#   --fresh             drop the fleet's database and the broker's data first
#   --kafka real        (default) a real Apache Kafka broker (scripts/kafka.sh), its data kept
#                       in target/kafka/dev across runs, as a deployment's is
#   --kafka mock        librdkafka's in-memory mock broker (dev-broker): starts in a blink, no
#                       JVM, but keeps nothing and is not Kafka
#   --with-prometheus   also run Prometheus (Debian's package, installed when missing) on
#                       127.0.0.1:9090 (FLEET_PROMETHEUS_PORT), scraping every process's
#                       operations port and evaluating the fleet's alerting rules
#   --with-tracing      also run Jaeger (all-in-one, traces in memory) and point every process
#                       at it (OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318, FLEET_OTLP_PORT;
#                       OTLP/gRPC on the port below it); its query API on http://127.0.0.1:16686
#                       (FLEET_JAEGER_PORT; query gRPC on the port below, health on the port
#                       above), e.g. /api/traces?service=gateway. Jaeger is built once from its Go
#                       module (needs Go; minutes the first time) into
#                       $CARGO_TARGET_DIR/../dev-tools/; that build has no UI pages (a
#                       placeholder): FLEET_JAEGER_BIN takes a Jaeger release binary, which has
#                       them. Its configuration: kubernetes/components/tracing/jaeger-config.yaml
#
# A service that exits is started again, as Kubernetes restarts a pod: stop one with SIGTERM
# (its pid is in target/dev-logs/<name>.pid) to see it drain and come back. One that fails
# (exits non-zero) within FLEET_CRASH_WINDOW seconds (default 10) of its start is crash-looping:
# the fleet stops.
#
# Every process serves its API on its port and its probes and /metrics on its operations port
# (OPS_PORT), the port + 1000: gateway 8080 and 9080, rental 8081 and 9081, and so on.
# FLEET_REPLICAS runs several replicas of a service, e.g. FLEET_REPLICAS="rental=2 payment=2":
# replica N listens on the service's port + 100*(N-1) (operations port + 1000 likewise) and is
# named <service>-N; the gateway and rental are given every replica's address and balance across
# them.
# Environment: DATABASE_ADMIN_URL or PGHOST/... (use that PostgreSQL instead of a private
# cluster), FLEET_PG_PORT (private cluster port, default 55432), FLEET_KAFKA (real or mock, as
# --kafka), FLEET_KAFKA_PORT (the broker's port, default 59092, or the next free one),
# KAFKA_BROKERS (use that Kafka instead of starting one; the fleet's topics it lacks are created,
# as on the broker started here, with FLEET_KAFKA_PARTITIONS partitions, default 3, and
# FLEET_KAFKA_REPLICATION replicas, default 1),
# RUST_LOG (default info), FLEET_READY_TIMEOUT (seconds to wait for each /readyz, default 60),
# CARGO_TARGET_DIR, FLEET_DB_NAME (default fleet). Every other variable set when it starts
# reaches every service, so PAYMENT_LATENCY_MS=400..620 scripts/dev.sh slows payment down, and
# OTEL_EXPORTER_OTLP_ENDPOINT (without --with-tracing) sends the traces to a back end of your own;
# OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG choose which are kept.
#
# Logs: target/dev-logs/<name>.log, one per process (target/kafka/dev/broker.log for Kafka,
# dev-broker.log for the mock, jaeger.log and jaeger-build.log for Jaeger).

# shellcheck source=scripts/lib/postgres.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/postgres.sh"
# shellcheck source=scripts/lib/kafka.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kafka.sh"
# shellcheck source=scripts/lib/jaeger.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/jaeger.sh"

# The fleet: one line per service. A service whose binary is not built yet is skipped.
# The gateway has no database role ("-").
#   name             binary            port  db role
FLEET_SERVICES=(
    "book-management book-management   8083  book_svc"
    "rental          rental            8081  rental_svc"
    "payment         payment           8082  payment_svc"
    "user            user              8084  user_svc"
    "view            view              8085  view_svc"
    "points          points            8086  points_svc"
    "gateway         gateway           8080  -"
)
# A process's operations port (probes, /metrics) is its API port + OPS_OFFSET.
OPS_OFFSET=1000

# How many replicas of SERVICE FLEET_REPLICAS asks for (1 unless named).
replicas_of() {
    local pair
    for pair in ${FLEET_REPLICAS:-}; do
        if [[ "${pair%%=*}" == "$1" ]]; then
            [[ "${pair#*=}" =~ ^[1-9]$ ]] || die "FLEET_REPLICAS: '$pair' must be <service>=1..9"
            echo "${pair#*=}"
            return
        fi
    done
    echo 1
}

# Every replica's address of the service whose first replica listens on PORT, comma-separated.
addresses_of() {
    local service="$1" port="$2" n list=""
    for ((n = 0; n < $(replicas_of "$service"); n++)); do
        list+="${list:+,}http://127.0.0.1:$((port + 100 * n))"
    done
    echo "$list"
}

# Extra environment for one service, as NAME=VALUE lines (e.g. the URLs of its peers).
service_extra_env() {
    case "$1" in
        # rental's own token for payment comes from the user service (client credentials).
        rental) printf '%s\n' "PAYMENT_URL=$(addresses_of payment 8082)" \
            "JWKS_URL=http://127.0.0.1:8084/.well-known/jwks.json" \
            "TOKEN_URL=http://127.0.0.1:8084/api/v1/auth/token" && cat "$SECRETS_DIR/rental-client.env" ;;
        book-management) printf '%s\n' "JWKS_URL=http://127.0.0.1:8084/.well-known/jwks.json" ;;
        payment) printf '%s\n' "JWKS_URL=http://127.0.0.1:8084/.well-known/jwks.json" ;;
        view) printf '%s\n' "JWKS_URL=http://127.0.0.1:8084/.well-known/jwks.json" ;;
        points) printf '%s\n' "JWKS_URL=http://127.0.0.1:8084/.well-known/jwks.json" ;;
        # A signing key made at each start (tokens die with the process: local development
        # only); the manager and rental's client secret made once (scripts/make-secrets.sh).
        user) echo "JWT_EPHEMERAL_KEY=true" && cat "$SECRETS_DIR/manager.env" "$SECRETS_DIR/rental-client.env" ;;
        gateway) printf '%s\n' "JWKS_URL=http://127.0.0.1:8084/.well-known/jwks.json" \
            "UPSTREAM_USER=$(addresses_of user 8084)" \
            "UPSTREAM_BOOK_MANAGEMENT=$(addresses_of book-management 8083)" \
            "UPSTREAM_RENTAL=$(addresses_of rental 8081)" "UPSTREAM_PAYMENT=$(addresses_of payment 8082)"
            if [[ -x "$BIN_DIR/view" ]]; then echo "UPSTREAM_VIEW=$(addresses_of view 8085)"; fi
            if [[ -x "$BIN_DIR/points" ]]; then echo "UPSTREAM_POINTS=$(addresses_of points 8086)"; fi ;;
        *) ;;
    esac
}

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

build=1
build_only=0
kafka="${FLEET_KAFKA:-real}"
profile=debug
fresh=0
with_prometheus=0
with_tracing=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-build) build=0 ;;
        --build-only) build_only=1 ;;
        --kafka)
            kafka="${2:-}"
            shift
            ;;
        --release) profile=release ;;
        --profiling) profile=profiling ;;
        --fresh) fresh=1 ;;
        --with-prometheus) with_prometheus=1 ;;
        --with-tracing) with_tracing=1 ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

[[ "$kafka" == real || "$kafka" == mock ]] || die "--kafka (or FLEET_KAFKA) takes real or mock, not '$kafka'"
[[ $build -eq 1 || $build_only -eq 0 ]] || die "--no-build and --build-only exclude each other"

LOG_DIR="$FLEET_REPO/target/dev-logs"
# The manager's password and rental's client secret, made on the first start and kept.
SECRETS_DIR="$FLEET_REPO/target/dev-secrets"
KAFKA_DATA="$FLEET_REPO/target/kafka/dev"
BIN_DIR="$CARGO_TARGET_DIR/$profile"
READY_TIMEOUT="${FLEET_READY_TIMEOUT:-60}"
STOP_TIMEOUT="${FLEET_STOP_TIMEOUT:-30}"
CRASH_WINDOW="${FLEET_CRASH_WINDOW:-10}"

# Every background process runs in its own session and process group (setsid), so a Ctrl-C in
# the terminal reaches only this script, which then stops the fleet in order: services, broker,
# database; and a process's own children go with it.
detach=()
command -v setsid >/dev/null 2>&1 && detach=(setsid)

service_pids=()
service_names=()
service_ports=()
service_ops_ports=()
service_binaries=()
service_envs=()
service_started=()
broker_pid=""
jaeger_pid=""
jaeger_ui=0
cleaned_up=0

# Is PID still running (and not merely a zombie)?
alive() {
    local pid="$1" stat
    kill -0 "$pid" 2>/dev/null || return 1
    [[ -r "/proc/$pid/stat" ]] || return 0
    { stat="$(<"/proc/$pid/stat")"; } 2>/dev/null || return 1
    stat="${stat##*) }"
    [[ "${stat%% *}" != Z ]]
}

# Waits until URL answers 200, for at most READY_TIMEOUT seconds; stops the fleet with NAME's log
# when the process PID exits first or the time runs out.
wait_ready() {
    local name="$1" pid="$2" url="$3" deadline=$((SECONDS + READY_TIMEOUT))
    until [[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)" == 200 ]]; do
        if ! alive "$pid"; then
            tail -n 20 "$LOG_DIR/$name.log" >&2 || true
            die "$name exited during startup (log: $LOG_DIR/$name.log)"
        fi
        ((SECONDS < deadline)) ||
            die "$name is not ready at $url after ${READY_TIMEOUT}s (log: $LOG_DIR/$name.log)"
        sleep 0.3
    done
}

# signal_group PID SIGNAL: send SIGNAL to the process group PID leads (or to PID alone).
signal_group() {
    kill "-$2" -- "-$1" 2>/dev/null || kill "-$2" "$1" 2>/dev/null || true
}

# await_group NAME PID: wait for a process told to stop; SIGKILL after STOP_TIMEOUT.
await_group() {
    local name="$1" pid="$2" deadline=$((SECONDS + STOP_TIMEOUT))
    while alive "$pid" && ((SECONDS < deadline)); do
        sleep 0.2
    done
    if alive "$pid"; then
        warn "$name did not stop within ${STOP_TIMEOUT}s; killing it"
        signal_group "$pid" KILL
    fi
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    [[ $cleaned_up -eq 0 ]] || return 0
    cleaned_up=1
    trap '' INT TERM HUP
    local i pid
    if [[ ${#service_pids[@]} -gt 0 ]]; then
        log "stopping services: ${service_names[*]}"
        # SIGTERM to all first, so they drain in parallel.
        for pid in "${service_pids[@]}"; do
            signal_group "$pid" TERM
        done
        for i in "${!service_pids[@]}"; do
            await_group "${service_names[$i]}" "${service_pids[$i]}"
        done
    fi
    # After the services: their last spans, flushed as they stop, still land.
    if [[ -n "$jaeger_pid" ]]; then
        log "stopping jaeger"
        signal_group "$jaeger_pid" TERM
        await_group jaeger "$jaeger_pid"
    fi
    if [[ -n "$broker_pid" ]]; then
        log "stopping dev-broker"
        signal_group "$broker_pid" TERM
        await_group dev-broker "$broker_pid"
    fi
    stop_private_kafka
    rm -f "$LOG_DIR"/*.pid "$LOG_DIR/fleet.env"
    stop_private_postgres
    log "fleet stopped"
    exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 0' INT TERM
trap 'exit 129' HUP

# --- prerequisites and build -------------------------------------------------------------------

cd "$FLEET_REPO"
ensure_build_prereqs
need_cmd curl
mkdir -p "$LOG_DIR"

if [[ $build -eq 1 ]]; then
    profile_flag=()
    [[ "$profile" == release ]] && profile_flag=(--release)
    # perf walks stacks by frame pointers, which release code leaves out.
    if [[ "$profile" == profiling ]]; then
        profile_flag=(--profile profiling)
        export RUSTFLAGS="${RUSTFLAGS:-} -C force-frame-pointers=yes"
    fi
    log "cargo build --workspace --bins ${profile_flag[*]}"
    cargo build --workspace --bins "${profile_flag[@]}"
fi
if [[ $build_only -eq 1 ]]; then
    log "built into $BIN_DIR"
    if [[ $with_tracing -eq 1 ]]; then
        ensure_jaeger "$LOG_DIR/jaeger-build.log"
        log "Jaeger: $FLEET_JAEGER_BIN"
    fi
    exit 0
fi
"$FLEET_REPO/scripts/make-secrets.sh" "$SECRETS_DIR" 2>/dev/null

# Which services are built, and are their ports free? Checked before anything is started.
to_start=()
for line in "${FLEET_SERVICES[@]}"; do
    read -r name binary port role <<<"$line"
    if [[ ! -x "$BIN_DIR/$binary" ]]; then
        log "skipping $name: $BIN_DIR/$binary is not built"
        continue
    fi
    for ((n = 1; n <= $(replicas_of "$name"); n++)); do
        instance="$name" instance_port="$port"
        if ((n > 1)); then
            instance="$name-$n" instance_port=$((port + 100 * (n - 1)))
        fi
        port_in_use "$instance_port" && die "port $instance_port (for $instance) is already in use"
        port_in_use $((instance_port + OPS_OFFSET)) &&
            die "port $((instance_port + OPS_OFFSET)) (for $instance's operations port) is already in use"
        to_start+=("$instance $binary $instance_port $role")
    done
done
[[ ${#to_start[@]} -gt 0 ]] || die "no service binary found in $BIN_DIR"
PROMETHEUS_PORT="${FLEET_PROMETHEUS_PORT:-9090}"
if [[ $with_prometheus -eq 1 ]]; then
    need_cmd prometheus
    port_in_use "$PROMETHEUS_PORT" && die "port $PROMETHEUS_PORT (for prometheus) is already in use"
fi
# Jaeger's ports, as its usual ones: OTLP/HTTP (what the services send to) with OTLP/gRPC below
# it; the UI and query API with the query's gRPC below it and the health check above it.
OTLP_PORT="${FLEET_OTLP_PORT:-4318}"
JAEGER_PORT="${FLEET_JAEGER_PORT:-16686}"
if [[ $with_tracing -eq 1 ]]; then
    for port in "$((OTLP_PORT - 1))" "$OTLP_PORT" "$((JAEGER_PORT - 1))" "$JAEGER_PORT" "$((JAEGER_PORT + 1))"; do
        port_in_use "$port" && die "port $port (for jaeger) is already in use (FLEET_OTLP_PORT, FLEET_JAEGER_PORT)"
    done
    ensure_jaeger "$LOG_DIR/jaeger-build.log"
fi

# --- PostgreSQL ----------------------------------------------------------------------------

ensure_postgres
if [[ $fresh -eq 1 ]]; then
    log "dropping database $FLEET_DB_NAME"
    psql_admin postgres -c "DROP DATABASE IF EXISTS \"$FLEET_DB_NAME\" WITH (FORCE)"
fi
create_fleet_database

# --- Kafka ---------------------------------------------------------------------------------

if [[ -n "${KAFKA_BROKERS:-}" || "$kafka" == real ]]; then
    if [[ -n "${KAFKA_BROKERS:-}" ]]; then
        log "Kafka: using KAFKA_BROKERS=$KAFKA_BROKERS"
    else
        if [[ $fresh -eq 1 ]]; then
            log "removing the broker's data ($KAFKA_DATA)"
            rm -rf "$KAFKA_DATA"
        fi
        ensure_kafka "$KAFKA_DATA"
        echo "$FLEET_KAFKA_PID" >"$LOG_DIR/kafka.pid"
    fi
    [[ -x "$BIN_DIR/dev-broker" ]] || die "$BIN_DIR/dev-broker is not built (run without --no-build)"
    # Topics are created explicitly, never by a producer's first message.
    "$BIN_DIR/dev-broker" --ensure-topics-on "$KAFKA_BROKERS" --partitions "${FLEET_KAFKA_PARTITIONS:-3}" \
        --replication "${FLEET_KAFKA_REPLICATION:-1}" ||
        die "cannot create the fleet's topics on $KAFKA_BROKERS"
else
    [[ -x "$BIN_DIR/dev-broker" ]] ||
        die "$BIN_DIR/dev-broker is not built (run without --no-build, or set KAFKA_BROKERS)"
    bootstrap_file="$LOG_DIR/dev-broker.bootstrap"
    rm -f "$bootstrap_file"
    log "starting dev-broker (log: $LOG_DIR/dev-broker.log)"
    RUST_LOG="${RUST_LOG:-info}" "${detach[@]}" "$BIN_DIR/dev-broker" --partitions 3 \
        --bootstrap-file "$bootstrap_file" >"$LOG_DIR/dev-broker.log" 2>&1 &
    broker_pid=$!
    deadline=$((SECONDS + 30))
    while [[ ! -s "$bootstrap_file" ]]; do
        if ! alive "$broker_pid"; then
            tail -n 20 "$LOG_DIR/dev-broker.log" >&2 || true
            die "dev-broker exited during startup (log: $LOG_DIR/dev-broker.log)"
        fi
        ((SECONDS < deadline)) ||
            die "dev-broker wrote no bootstrap address within 30s (log: $LOG_DIR/dev-broker.log)"
        sleep 0.2
    done
    KAFKA_BROKERS="$(tr -d '[:space:]' <"$bootstrap_file")"
    export KAFKA_BROKERS
    log "dev-broker answers at $KAFKA_BROKERS"
fi

# --- Jaeger, when asked: before the services, so that their first spans have somewhere to go ---

if [[ $with_tracing -eq 1 ]]; then
    log "starting jaeger: UI on port $JAEGER_PORT, OTLP/HTTP on port $OTLP_PORT (log: $LOG_DIR/jaeger.log)"
    # The Kubernetes component's configuration, on loopback and this script's ports.
    JAEGER_LISTEN_HOST=127.0.0.1 JAEGER_QUERY_HOST=127.0.0.1 \
        JAEGER_OTLP_HTTP_PORT="$OTLP_PORT" JAEGER_OTLP_GRPC_PORT="$((OTLP_PORT - 1))" \
        JAEGER_UI_PORT="$JAEGER_PORT" JAEGER_QUERY_GRPC_PORT="$((JAEGER_PORT - 1))" \
        JAEGER_HEALTH_PORT="$((JAEGER_PORT + 1))" GOMEMLIMIT=360MiB \
        "${detach[@]}" "$FLEET_JAEGER_BIN" --config="$FLEET_JAEGER_CONFIG" >"$LOG_DIR/jaeger.log" 2>&1 &
    jaeger_pid=$!
    echo "$jaeger_pid" >"$LOG_DIR/jaeger.pid"
    wait_ready jaeger "$jaeger_pid" "http://127.0.0.1:$((JAEGER_PORT + 1))/status"
    # Built from the Go module, Jaeger has no UI pages (its release builds embed them from
    # jaeger-ui, which the module does not carry): a placeholder page, and the query API.
    if ! grep -q 'ui assets not embedded' "$LOG_DIR/jaeger.log"; then
        jaeger_ui=1
    fi
fi

# --- services ------------------------------------------------------------------------------

# start_instance I: (re)start the I-th process with the settings it was given first.
start_instance() {
    local i="$1" name="${service_names[$1]}" env_vars
    mapfile -t env_vars <<<"${service_envs[$i]}"
    "${detach[@]}" env "${env_vars[@]}" "$BIN_DIR/${service_binaries[$i]}" >>"$LOG_DIR/$name.log" 2>&1 &
    service_pids[i]=$!
    service_started[i]=$SECONDS
    echo "$!" >"$LOG_DIR/$name.pid"
}

for line in "${to_start[@]}"; do
    read -r name binary port role <<<"$line"
    # Loopback only: the services' internal endpoints and metrics are not for the network (the
    # operations port follows HTTP_HOST).
    env_vars=("HTTP_HOST=127.0.0.1" "HTTP_PORT=$port" "OPS_PORT=$((port + OPS_OFFSET))"
        "KAFKA_BROKERS=$KAFKA_BROKERS" "RUST_LOG=${RUST_LOG:-info}")
    if [[ "$role" != "-" ]]; then
        env_vars+=("DATABASE_URL=$(service_database_url "$role")")
    fi
    # Each process names itself (service.name); the SDK appends /v1/traces.
    if [[ $with_tracing -eq 1 ]]; then
        env_vars+=("OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OTLP_PORT")
    fi
    while IFS= read -r extra; do
        if [[ -n "$extra" ]]; then
            env_vars+=("$extra")
        fi
    done < <(service_extra_env "${name%-[0-9]}")
    log "starting $name on port $port, operations port $((port + OPS_OFFSET)) (log: $LOG_DIR/$name.log)"
    : >"$LOG_DIR/$name.log"
    i=${#service_names[@]}
    service_names+=("$name")
    service_ports+=("$port")
    service_ops_ports+=("$((port + OPS_OFFSET))")
    service_binaries+=("$binary")
    service_envs+=("$(printf '%s\n' "${env_vars[@]}")")
    start_instance "$i"
done

for i in "${!service_pids[@]}"; do
    name="${service_names[$i]}"
    # Where Kubernetes probes it too: the operations port.
    wait_ready "$name" "${service_pids[$i]}" "http://127.0.0.1:${service_ops_ports[$i]}/readyz"
done

# --- Prometheus, when asked ------------------------------------------------------------------

if [[ $with_prometheus -eq 1 ]]; then
    prometheus_dir="$FLEET_REPO/target/dev-prometheus"
    mkdir -p "$prometheus_dir/data"
    targets=""
    # Each process's operations port: the only one serving /metrics.
    for port in "${service_ops_ports[@]}"; do
        targets+="          - 127.0.0.1:$port"$'\n'
    done
    # The cluster's configuration finds replicas through DNS; here every process is on localhost.
    cat >"$prometheus_dir/prometheus.yml" <<EOF
global:
  scrape_interval: 5s
  evaluation_interval: 15s
rule_files:
  - $FLEET_REPO/kubernetes/base/observability/alerts.yml
scrape_configs:
  - job_name: fleet
    static_configs:
      - targets:
$targets
EOF
    log "starting prometheus on port $PROMETHEUS_PORT (log: $LOG_DIR/prometheus.log)"
    "${detach[@]}" prometheus --config.file="$prometheus_dir/prometheus.yml" \
        --storage.tsdb.path="$prometheus_dir/data" \
        --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" >"$LOG_DIR/prometheus.log" 2>&1 &
    service_pids+=("$!")
    service_names+=("prometheus")
    service_ports+=("$PROMETHEUS_PORT")
    service_ops_ports+=("")
    service_binaries+=("")
    service_started+=("$SECONDS")
fi

# --- where the fleet answers -------------------------------------------------------------------

# What a tool driving this fleet needs to reach it (siege/run reads it).
cat >"$LOG_DIR/fleet.env" <<EOF
DATABASE_ADMIN_URL=$DATABASE_ADMIN_URL
FLEET_DB_NAME=$FLEET_DB_NAME
KAFKA_BROKERS=$KAFKA_BROKERS
FLEET_KAFKA=$(if [[ -n "$FLEET_KAFKA_PID$broker_pid" ]]; then echo "$kafka"; else echo external; fi)
EOF

{
    echo
    printf '%-17s %-24s %-10s %s\n' service url ops log
    for i in "${!service_pids[@]}"; do
        printf '%-17s %-24s %-10s %s\n' "${service_names[$i]}" \
            "http://127.0.0.1:${service_ports[$i]}" "${service_ops_ports[$i]:--}" \
            "$LOG_DIR/${service_names[$i]}.log"
    done
    if [[ -n "$jaeger_pid" ]]; then
        printf '%-17s %-24s %-10s %s\n' jaeger "http://127.0.0.1:$JAEGER_PORT" - "$LOG_DIR/jaeger.log"
    fi
    echo
    if [[ -n "$broker_pid" ]]; then
        echo "kafka broker:  $KAFKA_BROKERS (librdkafka's mock, dev-broker, log: $LOG_DIR/dev-broker.log)"
    elif [[ -n "$FLEET_KAFKA_PID" ]]; then
        echo "kafka broker:  $KAFKA_BROKERS (Apache Kafka, log: $FLEET_KAFKA_LOG)"
    else
        echo "kafka broker:  $KAFKA_BROKERS"
    fi
    echo "postgres:      $FLEET_PG_HOST:$FLEET_PG_PORT, database $FLEET_DB_NAME"
    # shellcheck disable=SC1091
    echo "manager:       $(. "$SECRETS_DIR/manager.env" && echo "$MANAGER_EMAIL / $MANAGER_PASSWORD") ($SECRETS_DIR/manager.env)"
    if [[ -x "$BIN_DIR/gateway" ]]; then
        echo "public API:    http://127.0.0.1:8080/api/v1 (Swagger UI: http://127.0.0.1:8080/api/v1/docs/)"
    fi
    if [[ -n "$jaeger_pid" && $jaeger_ui -eq 1 ]]; then
        echo "traces:        http://127.0.0.1:$JAEGER_PORT (Jaeger UI; every process sends OTLP to http://127.0.0.1:$OTLP_PORT)"
    elif [[ -n "$jaeger_pid" ]]; then
        echo "traces:        http://127.0.0.1:$JAEGER_PORT/api/traces?service=gateway&limit=20 (Jaeger's query API;"
        echo "               every process sends OTLP to http://127.0.0.1:$OTLP_PORT). This Jaeger, built from its"
        echo "               Go module, has no UI pages: FLEET_JAEGER_BIN takes a release binary that has them"
    fi
    echo
    echo "The fleet is up. Press Ctrl-C to stop it."
} >&2

# --- run until interrupted; restart what stops, unless it crash-loops ----------------------------

while :; do
    wait -n || sleep 1
    for i in "${!service_pids[@]}"; do
        alive "${service_pids[$i]}" && continue
        name="${service_names[$i]}"
        status=0
        wait "${service_pids[$i]}" 2>/dev/null || status=$?
        if [[ -z "${service_binaries[$i]}" ]] ||
            ((status != 0 && SECONDS - service_started[i] < CRASH_WINDOW)); then
            tail -n 20 "$LOG_DIR/$name.log" >&2 || true
            die "$name exited (log: $LOG_DIR/$name.log)"
        fi
        log "$name exited (status $status); starting it again"
        start_instance "$i"
    done
    if [[ -n "$broker_pid" ]] && ! alive "$broker_pid"; then
        die "dev-broker exited (log: $LOG_DIR/dev-broker.log)"
    fi
    if [[ -n "$jaeger_pid" ]] && ! alive "$jaeger_pid"; then
        tail -n 20 "$LOG_DIR/jaeger.log" >&2 || true
        die "jaeger exited (log: $LOG_DIR/jaeger.log)"
    fi
    if [[ -n "$FLEET_KAFKA_PID" ]] && ! alive "$FLEET_KAFKA_PID"; then
        die "Kafka exited (log: $FLEET_KAFKA_LOG)"
    fi
done
