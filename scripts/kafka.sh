#!/usr/bin/env bash
# Run one Apache Kafka broker (KRaft: broker and controller in one JVM) in the foreground on
# 127.0.0.1, until it is stopped. The jars are fetched with Maven on first use (pinned in
# scripts/kafka/pom.xml, cached outside the clone); DATA is formatted when it is new and kept
# otherwise, so a broker killed and started again on the same DATA has everything it had.
#
# usage: scripts/kafka.sh [--data DIR] [--port PORT] [--controller-port PORT] [--exit-with PID]
#        scripts/kafka.sh --classpath
#   --data DIR             its data (default target/kafka/dev); logs go below DIR/logs
#   --port PORT            the client listener (default 59092)
#   --controller-port PORT the KRaft controller listener (default PORT + 1)
#   --exit-with PID        the broker is killed when process PID ends (for test harnesses)
#   --classpath            fetch the jars and print the classpath, then exit
#
# The process that runs the broker is this one (the script execs java), so its pid is the
# broker's: SIGTERM stops it cleanly, SIGKILL kills it as a crash would.
# Environment: FLEET_KAFKA_HEAP (maximum heap, default 1g), CARGO_TARGET_DIR (the jars' cache
# sits beside it), FLEET_KAFKA_CACHE (the cache itself).

# shellcheck source=scripts/lib/kafka.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/kafka.sh"

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

data="$FLEET_REPO/target/kafka/dev"
port=59092
cport=""
exit_with=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --data) data="${2:?--data needs a folder}"; shift ;;
        --port) port="${2:?--port needs a number}"; shift ;;
        --controller-port) cport="${2:?--controller-port needs a number}"; shift ;;
        --exit-with) exit_with="${2:?--exit-with needs a pid}"; shift ;;
        --classpath)
            kafka_classpath
            exit 0
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
[[ "$port" =~ ^[0-9]+$ ]] || die "--port takes a number, not '$port'"
cport="${cport:-$((port + 1))}"

if [[ -n "$exit_with" ]]; then
    # A watchdog outside the JVM: once the harness that started the broker is gone, so is the
    # broker ($$ is the JVM's pid after the exec below).
    broker=$$
    (
        while kill -0 "$exit_with" 2>/dev/null && kill -0 "$broker" 2>/dev/null; do
            sleep 1
        done
        kill -KILL "$broker" 2>/dev/null
    ) </dev/null >/dev/null 2>&1 &
fi

kafka_exec "$data" "$port" "$cport"
