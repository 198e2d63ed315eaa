#!/usr/bin/env bash
# Bring the whole fleet up on this machine, infrastructure included: PostgreSQL (database
# "fleet", one role and schema per service), Apache Kafka (the fleet's topics and their
# dead-letter twins) and every service built in the workspace. Ctrl-C (or SIGTERM, or SIGHUP)
# stops all of it again. This script builds and installs what is missing; the fleet's
# supervisor (tools/fleet, `fleet up`) then runs every process, and takes this script's place
# (same pid): its stop signals reach it even from a script in the background, and whatever it
# started dies with it, however it ends.
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
# FLEET_KAFKA_REPLICATION replicas, default 1), FLEET_KAFKA_ADMIN_PASSWORD and
# FLEET_KAFKA_PASSWORD_<SERVICE> (the broker's admin's and each service's Kafka password on the
# broker started here, where each service signs in as its own principal and ACLs hold it to its
# topics; default: the principal's name, as the database roles' local defaults),
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

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

build=1
build_only=0
kafka="${FLEET_KAFKA:-real}"
profile=debug
supervisor=(up)
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
        --fresh) supervisor+=(--fresh) ;;
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
BIN_DIR="$CARGO_TARGET_DIR/$profile"

cd "$FLEET_REPO"
ensure_build_prereqs
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
[[ -x "$BIN_DIR/fleet" ]] || die "$BIN_DIR/fleet is not built (run without --no-build)"

# What the supervisor runs, installed when missing.
"$FLEET_REPO/scripts/make-secrets.sh" "$FLEET_REPO/target/dev-secrets" 2>/dev/null
ensure_postgres_installed
supervisor+=(--bin-dir "$BIN_DIR" --kafka "$kafka")
if [[ "$kafka" == real && -z "${KAFKA_BROKERS:-}" ]]; then
    kafka_classpath >/dev/null
fi
if [[ $with_prometheus -eq 1 ]]; then
    need_cmd prometheus
    supervisor+=(--with-prometheus)
fi
if [[ $with_tracing -eq 1 ]]; then
    ensure_jaeger "$LOG_DIR/jaeger-build.log"
    supervisor+=(--with-tracing "$FLEET_JAEGER_BIN" "$FLEET_JAEGER_CONFIG")
fi

exec "$BIN_DIR/fleet" "${supervisor[@]}"
