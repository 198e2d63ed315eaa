# shellcheck shell=bash
# The steps scripts/kind.sh and scripts/cluster.sh share, once: waiting for the fleet, the
# journey through the gateway and the diagnostics of a failed run. Source it after defining
#   k ARGS...        kubectl in the fleet's namespace, on the cluster at hand
# and set NAMESPACE.

# fleet_wait: the StatefulSets rolled out, every Job of the namespace complete, every Deployment
# rolled out.
fleet_wait() {
    local name
    for name in $(k get statefulsets -o name); do
        k rollout status "$name" --timeout=5m
    done
    # Every Job, whatever it is called (a Job renamed to be re-appliable is still found), and
    # none at all once their time-to-live has removed them.
    if [[ -n "$(k get jobs -o name)" ]]; then
        k wait --for=condition=complete job --all --timeout=5m
    fi
    for name in $(k get deployments -o name); do
        k rollout status "$name" --timeout=5m
    done
    k get pods,hpa
}

# fleet_secret_value KEY: the user-manager Secret's KEY.
fleet_secret_value() {
    k get secret user-manager -o "jsonpath={.data.$1}" | base64 -d
}

# fleet_journey URL: scripts/journey.py through the gateway at URL, as the manager of the
# user-manager Secret: book, rent, cancel, rent, return, the boards.
fleet_journey() {
    FLEET_MANAGER_EMAIL="$(fleet_secret_value MANAGER_EMAIL)" \
        FLEET_MANAGER_PASSWORD="$(fleet_secret_value MANAGER_PASSWORD)" \
        "$FLEET_REPO/scripts/journey.py" "$1"
}

# fleet_diagnostics: what the namespace holds and its pods' recent logs (for a failed run).
fleet_diagnostics() {
    local pod
    k get all,events || true
    k top pods || true
    k describe pods || true
    for pod in $(k get pods -o name); do
        k logs "$pod" --all-containers --tail=80 || true
    done
}
