#!/usr/bin/env bash
# The fleet on kind, step by step: docs/deploy.md gives these commands and the CI workflow's kind
# job runs the same ones, in the same order (scripts/check-deploy.sh holds the two in step).
#
# usage: scripts/kind.sh STEP
#   cluster         a kind cluster "book-rental" whose node port 30080 is the host's
#                   localhost:8080 (kubernetes/overlays/kind/kind-cluster.yaml); kept if it exists
#   images          every image built at once (docker/docker-bake.hcl: the eight binaries and the
#                   siege image, tagged :dev) and loaded into the cluster's node (no registry).
#                   CACHE_FROM / CACHE_TO name a build cache (CI: the GitHub Actions cache)
#   metrics-server  the metrics server the autoscalers need, from its release manifest (pinned),
#                   with --kubelet-insecure-tls (kind's kubelets have self-signed certificates)
#   deploy          this cluster's own secrets (scripts/make-secrets.sh, kept in
#                   kubernetes/components/dev-cluster/secrets, out of Git), then the kind overlay applied
#   wait            the StatefulSets rolled out, every Job of the namespace complete, every
#                   Deployment rolled out
#   journey         scripts/journey.py through the gateway at localhost:8080 (FLEET_GATEWAY_URL),
#                   as the manager of the user-manager Secret: book, rent, cancel, rent, return,
#                   the boards
#   hpa             siege/run hpa: rent → return load in the cluster until gateway, rental and
#                   payment have scaled out; siege/results/hpa.json and hpa.png
#   diagnostics     what the cluster holds and its pods' recent logs (for a failed run)
#
# Needs Docker (with buildx), kind and kubectl; the journey and hpa steps need python3.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/fleet-k8s.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/fleet-k8s.sh"

CLUSTER=book-rental
NAMESPACE=book-rental
# The metrics server's release, pinned: its manifest is fetched from the release itself.
METRICS_SERVER_VERSION=v0.8.1
METRICS_SERVER_MANIFEST="https://github.com/kubernetes-sigs/metrics-server/releases/download/$METRICS_SERVER_VERSION/components.yaml"

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

k() {
    kubectl -n "$NAMESPACE" "$@"
}

# requires CMD...: each on PATH (kind, Docker and kubectl are not installed from here).
requires() {
    local cmd
    for cmd in "$@"; do
        command -v "$cmd" >/dev/null 2>&1 || die "$cmd is needed for this step (docs/deploy.md, kind)"
    done
}

step_cluster() {
    requires kind kubectl
    if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
        log "kind cluster $CLUSTER exists: kept"
    else
        kind create cluster --name "$CLUSTER" --config kubernetes/overlays/kind/kind-cluster.yaml --wait 3m
    fi
    kubectl cluster-info --context "kind-$CLUSTER" >/dev/null
}

step_images() {
    requires docker kind python3
    local images
    # The tags come from the bake file itself, so a new image there is loaded too.
    images="$(docker buildx bake --file docker/docker-bake.hcl --print 2>/dev/null |
        python3 -c 'import json, sys; print("\n".join(t for v in json.load(sys.stdin)["target"].values() for t in v["tags"]))')"
    [[ -n "$images" ]] || die "docker/docker-bake.hcl names no image"
    log "docker buildx bake: $(echo "$images" | tr '\n' ' ')"
    docker buildx bake --file docker/docker-bake.hcl --load
    # shellcheck disable=SC2086 # one argument per image
    kind load docker-image --name "$CLUSTER" $images
}

step_metrics_server() {
    requires kubectl
    kubectl apply -f "$METRICS_SERVER_MANIFEST"
    if ! kubectl -n kube-system get deployment metrics-server -o jsonpath='{.spec.template.spec.containers[0].args}' |
        grep -q -- --kubelet-insecure-tls; then
        kubectl -n kube-system patch deployment metrics-server --type=json \
            -p '[{"op":"add","path":"/spec/template/spec/containers/0/args/-","value":"--kubelet-insecure-tls"}]'
    fi
    kubectl -n kube-system rollout status deployment/metrics-server --timeout=5m
    kubectl wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=5m
    # The first figures come one scrape after start.
    local tries=0
    until kubectl top nodes >/dev/null 2>&1; do
        ((++tries <= 60)) || die "the metrics server serves no node figures after 5 minutes"
        sleep 5
    done
    kubectl top nodes
}

step_deploy() {
    requires kubectl openssl
    scripts/make-secrets.sh kubernetes/components/dev-cluster/secrets
    kubectl apply -k kubernetes/overlays/kind
}

step_wait() {
    requires kubectl
    fleet_wait
}

step_journey() {
    requires kubectl python3
    fleet_journey "${FLEET_GATEWAY_URL:-http://localhost:8080}"
}

step_hpa() {
    requires kubectl python3
    siege/run hpa
}

step_diagnostics() {
    fleet_diagnostics
}

[[ $# -eq 1 ]] || {
    usage >&2
    exit 2
}
cd "$FLEET_REPO"
case "$1" in
    cluster) step_cluster ;;
    images) step_images ;;
    metrics-server) step_metrics_server ;;
    deploy) step_deploy ;;
    wait) step_wait ;;
    journey) step_journey ;;
    hpa) step_hpa ;;
    diagnostics) step_diagnostics ;;
    -h | --help) usage ;;
    *) die "unknown step '$1' (see --help)" ;;
esac
