#!/bin/bash
# The two commands of Apache Kafka's distribution the manifests run, on the jars of
# scripts/kafka/pom.xml (the ones every test runs): kafka-storage.sh and kafka-server-start.sh
# are links to this script.
set -euo pipefail
case "$(basename "$0")" in
    kafka-storage.sh) main=kafka.tools.StorageTool ;;
    kafka-server-start.sh) main=kafka.Kafka ;;
    *) echo "kafka-run.sh: run as kafka-storage.sh or kafka-server-start.sh" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086 # KAFKA_HEAP_OPTS and KAFKA_OPTS hold several options
exec java ${KAFKA_HEAP_OPTS:--Xmx1g} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties ${KAFKA_OPTS:-} \
    -cp '/opt/kafka/libs/*' "$main" "$@"
