#!/usr/bin/env bash
# The fleet on a real single-node Kubernetes that runs on this machine, without Docker, kind or a
# registry: the same steps as scripts/kind.sh, on components built from the Kubernetes project's
# Go modules and images built here (docs/deploy.md, "A local cluster without Docker").
#
# usage: scripts/cluster.sh STEP
#   build        the pinned components (scripts/cluster/components: kube-apiserver,
#                kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl; then
#                metrics-server and CoreDNS), cached outside the clone; a second run takes seconds
#   up           the cluster on this machine: etcd and the control plane on 127.0.0.1 with a PKI
#                made here, containerd + runc, kubelet, kube-proxy (iptables), the CNI bridge,
#                CoreDNS and metrics-server. Safe to run again: what runs is kept
#   images       every image the local overlay needs (the eight binaries, siege, PostgreSQL, Kafka
#                from the pinned jars, Prometheus, the pod sandbox), from a debootstrap root file
#                system, imported into the node's containerd
#   check        what must hold on this cluster: DNS answers the cluster's names and nothing else,
#                a pod's connection to an outside address fails at once
#   deploy       this cluster's secrets (scripts/make-secrets.sh), then the local overlay applied
#   wait         the StatefulSets rolled out, every Job complete, every Deployment rolled out
#   journey      scripts/journey.py through the gateway's NodePort on 127.0.0.1:30080
#   hpa          siege/run hpa on this cluster: gateway, rental and payment scale out under the
#                siege pod's load and back in after it; siege/results/hpa.json and hpa.png
#   rollout      siege/run cluster-rollout: rolling restarts of gateway, rental and payment under
#                load, five runs, every request answered with success
#   faults       siege/run cluster-faults: a rental pod, Kafka and PostgreSQL deleted under load;
#                nothing lost or doubled, the time until renting succeeds again
#   dashboard    the fleet's dashboard (Prometheus's console page) on 127.0.0.1:30090, and its
#                picture from headless Chromium: siege/results/cluster-dashboard.png
#   status       what runs: each component's pid, the node, the pods
#   diagnostics  the cluster's objects and the pods' recent logs (for a failed run)
#   down         stop everything up started (by pid), unmount, delete the network namespaces,
#                the iptables rules, the bridges and routes; the data stays for the next up
#                (`down --purge` removes it as well)
#
# Needs root (network namespaces, mounts, iptables), Go, Debian's containerd, runc, etcd-server,
# containernetworking-plugins, iptables, debootstrap (installed when missing). The kubeconfig is
# target/cluster/kubeconfig/admin: `export KUBECONFIG=$PWD/target/cluster/kubeconfig/admin`.
# Every component logs to target/cluster/logs/.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
# shellcheck source=scripts/lib/fleet-k8s.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/fleet-k8s.sh"

NAMESPACE=book-rental
STATE="${FLEET_CLUSTER_STATE:-$FLEET_REPO/target/cluster}"
CACHE="${FLEET_CLUSTER_CACHE:-$(dirname "$CARGO_TARGET_DIR")/cluster}"
COMPONENTS="$FLEET_REPO/scripts/cluster/components"
METRICS_SERVER_MODULE=sigs.k8s.io/metrics-server/cmd/metrics-server@v0.8.0
COREDNS_MODULE=github.com/coredns/coredns@v1.14.7
# Every host process of the cluster, in the order up starts them (down stops them in reverse).
PROCESSES=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet
    kube-proxy coredns metrics-server)

# The addresses: scripts/cluster/render.py decides them, once.
eval "$(python3 "$FLEET_REPO/scripts/cluster/render.py" --shell)"

usage() {
    sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

# The components' build, keyed by everything that pins it.
components_key() {
    short_hash "$(cat "$COMPONENTS/go.mod" "$COMPONENTS/go.sum")$METRICS_SERVER_MODULE$COREDNS_MODULE$(go env GOVERSION 2>/dev/null)"
}

BIN=""
bin_dir() {
    [[ -n "$BIN" ]] || BIN="$CACHE/bin-$(components_key)"
    printf '%s\n' "$BIN"
}

kubectl_() {
    "$(bin_dir)/kubectl" --kubeconfig "$STATE/kubeconfig/admin" "$@"
}

k() {
    kubectl_ -n "$NAMESPACE" "$@"
}

need_root() {
    [[ "$(id -u)" -eq 0 ]] ||
        die "this step needs root (network namespaces, mounts, iptables): run it with sudo"
}

# --- build ---------------------------------------------------------------------------------------

step_build() {
    command -v go >/dev/null 2>&1 ||
        die "Go is needed to build the components (Debian: apt-get install golang, or go.dev's release)"
    need_cmd gcc build-essential
    local bin version ldflags p started=$SECONDS
    bin="$(bin_dir)"
    if [[ -f "$bin/.complete" ]]; then
        log "components: $bin (built before)"
        return 0
    fi
    mkdir -p "$bin"
    version="$(sed -n 's/^require k8s.io\/kubernetes \(v[^ ]*\)$/\1/p' "$COMPONENTS/go.mod")"
    [[ -n "$version" ]] || die "$COMPONENTS/go.mod requires no k8s.io/kubernetes version"
    # What `kubectl version` and the node report, as the project's own release builds set it.
    ldflags="-s -w"
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=$(cut -d. -f1 <<<"${version#v}")"
        ldflags+=" -X $p.gitMinor=$(cut -d. -f2 <<<"$version") -X $p.gitTreeState=clean"
    done
    log "building Kubernetes $version (kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy, kubectl): several minutes the first time"
    (cd "$COMPONENTS" && GOBIN="$bin" go install -ldflags "$ldflags" tool) ||
        die "the Kubernetes components did not build (see above)"
    log "building $METRICS_SERVER_MODULE"
    GOBIN="$bin" go install -ldflags "-s -w" "$METRICS_SERVER_MODULE" ||
        die "metrics-server did not build (see above)"
    log "building $COREDNS_MODULE"
    GOBIN="$bin" CGO_ENABLED=0 go install -ldflags "-s -w" "$COREDNS_MODULE" ||
        die "CoreDNS did not build (see above)"
    touch "$bin/.complete"
    log "components built in $(format_elapsed $((SECONDS - started))): $bin"
}

# --- PKI -------------------------------------------------------------------------------------------

# cert STEM SUBJECT SANS [CA]: a key and a certificate signed by CA (default: the cluster's),
# for clients when SANS is empty and for servers otherwise. Kept when it exists.
cert() {
    local stem="$1" subject="$2" sans="$3" ca="${4:-ca}" pki="$STATE/pki" ext
    [[ -s "$pki/$stem.crt" ]] && return 0
    ext="$pki/$stem.ext"
    if [[ -n "$sans" ]]; then
        printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$sans" >"$ext"
    else
        printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >"$ext"
    fi
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$stem.key" 2>/dev/null
    openssl req -new -key "$pki/$stem.key" -subj "$subject" -out "$pki/$stem.csr" 2>/dev/null
    openssl x509 -req -in "$pki/$stem.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" \
        -CAcreateserial -days 365 -extfile "$ext" -out "$pki/$stem.crt" 2>/dev/null
    rm -f "$pki/$stem.csr" "$ext"
}

make_pki() {
    local pki="$STATE/pki" ca
    mkdir -p "$pki"
    chmod 700 "$pki"
    (
        umask 077
        for ca in ca front-proxy-ca etcd-ca; do
            [[ -s "$pki/$ca.crt" ]] && continue
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$pki/$ca.key" 2>/dev/null
            openssl req -x509 -new -key "$pki/$ca.key" -subj "/CN=fleet-local-$ca" -days 3650 \
                -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
                -out "$pki/$ca.crt" 2>/dev/null
        done
        cert etcd-server "/CN=etcd" "IP:127.0.0.1,DNS:localhost" etcd-ca
        cert apiserver-etcd-client "/CN=kube-apiserver-etcd-client" "" etcd-ca
        cert apiserver "/CN=kube-apiserver" \
            "IP:127.0.0.1,IP:$API_SERVICE_IP,IP:$NODE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
        cert apiserver-kubelet-client "/CN=kube-apiserver-kubelet-client" ""
        cert front-proxy-client "/CN=front-proxy-client" "" front-proxy-ca
        cert admin "/O=system:masters/CN=fleet-admin" ""
        cert controller-manager "/CN=system:kube-controller-manager" ""
        cert scheduler "/CN=system:kube-scheduler" ""
        cert kubelet-client "/O=system:nodes/CN=system:node:$NODE_NAME" ""
        cert kubelet-serving "/CN=$NODE_NAME" "IP:$NODE_IP,IP:127.0.0.1,DNS:$NODE_NAME"
        cert kube-proxy "/CN=system:kube-proxy" ""
        cert coredns "/CN=fleet:coredns" ""
        cert metrics-server-client "/CN=fleet:metrics-server" ""
        cert metrics-server "/CN=metrics-server" \
            "IP:$NODE_IP,DNS:metrics-server.kube-system.svc,DNS:metrics-server.kube-system.svc.$CLUSTER_DOMAIN"
        if [[ ! -s "$pki/sa.key" ]]; then
            openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
            openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
        fi
    )
}

# --- processes -------------------------------------------------------------------------------------

pid_of() {
    local file="$STATE/pids/$1.pid" pid
    [[ -s "$file" ]] || return 1
    pid="$(cat "$file")"
    kill -0 "$pid" 2>/dev/null || return 1
    printf '%s\n' "$pid"
}

# start NAME CMD...: CMD under a supervisor of its own session that starts it again when it exits
# (the controller-manager and the scheduler exit when the API server goes away), its output in
# logs/NAME.log. Kept when it runs already.
start() {
    local name="$1"
    shift
    if pid_of "$name" >/dev/null; then
        log "$name runs already (pid $(pid_of "$name"))"
        return 0
    fi
    mkdir -p "$STATE/logs" "$STATE/pids"
    log "starting $name (log: $STATE/logs/$name.log)"
    setsid bash -c '
        while :; do
            "$@"
            echo "[$(date +%H:%M:%S)] exited with status $?; starting again in 2 s"
            sleep 2
        done' "$name" "$@" >>"$STATE/logs/$name.log" 2>&1 </dev/null &
    echo $! >"$STATE/pids/$name.pid"
}

# wait_for NAME SECONDS CMD...: until CMD succeeds; on time-out, the component's log and a stop.
wait_for() {
    local name="$1" limit="$2" started=$SECONDS
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS - started >= limit)); then
            tail -n 30 "$STATE/logs/$name.log" >&2 2>/dev/null || true
            die "$name is not ready after ${limit}s (above: the end of $STATE/logs/$name.log)"
        fi
        pid_of "$name" >/dev/null || die "$name is not running (see $STATE/logs/$name.log)"
        sleep 1
    done
    log "$name ready ($((SECONDS - started))s)"
}

https_ok() {
    curl -sf --max-time 2 --cacert "$STATE/pki/$1" --cert "$STATE/pki/$2.crt" --key "$STATE/pki/$2.key" "$3"
}

# --- network -------------------------------------------------------------------------------------

# The host's side: the bridge (the node's address), the Service range's sink, forwarding for
# kube-proxy's DNAT and a FORWARD chain that lets nothing from a pod leave through any other
# interface, nor anything from elsewhere in. The sysctls' earlier values are kept for down.
network_up() {
    local sysctl saved="$STATE/sysctl.saved"
    if [[ ! -s "$saved" ]]; then
        for sysctl in net.ipv4.ip_forward net.bridge.bridge-nf-call-iptables; do
            echo "$sysctl=$(sysctl -n "$sysctl")"
        done >"$saved"
    fi
    sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link add "$BRIDGE" type bridge
    fi
    ip addr replace "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    if ! ip link show "$SERVICE_SINK" >/dev/null 2>&1; then
        ip link add "$SERVICE_SINK" type bridge
    fi
    ip link set "$SERVICE_SINK" up
    ip route replace "$SERVICE_CIDR" dev "$SERVICE_SINK"
    iptables -N FLEET-ISOLATION 2>/dev/null || iptables -F FLEET-ISOLATION
    iptables -A FLEET-ISOLATION -i "$BRIDGE" -o "$BRIDGE" -j RETURN
    iptables -A FLEET-ISOLATION -i "$BRIDGE" -j REJECT --reject-with icmp-net-unreachable
    iptables -A FLEET-ISOLATION -o "$BRIDGE" -j REJECT --reject-with icmp-net-unreachable
    iptables -C FORWARD -j FLEET-ISOLATION 2>/dev/null || iptables -I FORWARD 1 -j FLEET-ISOLATION
    # A Service address that no rule has rewritten (nothing behind it yet) is refused at once.
    iptables -N FLEET-SERVICE-SINK 2>/dev/null || iptables -F FLEET-SERVICE-SINK
    iptables -A FLEET-SERVICE-SINK -o "$SERVICE_SINK" -j REJECT --reject-with icmp-net-unreachable
    iptables -C OUTPUT -j FLEET-SERVICE-SINK 2>/dev/null || iptables -I OUTPUT 1 -j FLEET-SERVICE-SINK
}

network_down() {
    local chain parent
    for chain in FLEET-ISOLATION:FORWARD FLEET-SERVICE-SINK:OUTPUT; do
        parent="${chain#*:}"
        chain="${chain%%:*}"
        while iptables -D "$parent" -j "$chain" 2>/dev/null; do :; done
        iptables -F "$chain" 2>/dev/null || true
        iptables -X "$chain" 2>/dev/null || true
    done
    ip route del "$SERVICE_CIDR" dev "$SERVICE_SINK" 2>/dev/null || true
    ip link del "$SERVICE_SINK" 2>/dev/null || true
    ip link del "$BRIDGE" 2>/dev/null || true
    if [[ -s "$STATE/sysctl.saved" ]]; then
        sysctl -qp "$STATE/sysctl.saved" || true
        rm -f "$STATE/sysctl.saved"
    fi
}

# --- up ------------------------------------------------------------------------------------------

ensure_host_packages() {
    local missing=() cmd
    for cmd in containerd:containerd runc:runc etcd:etcd-server iptables:iptables \
        conntrack:conntrack openssl:openssl curl:curl dig:dnsutils; do
        command -v "${cmd%%:*}" >/dev/null 2>&1 || missing+=("${cmd#*:}")
    done
    [[ -x "$CNI_BIN_DIR/bridge" ]] || missing+=(containernetworking-plugins)
    [[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"
}

step_up() {
    need_root
    ensure_host_packages
    [[ -f "$(bin_dir)/.complete" ]] || step_build
    local bin started=$SECONDS
    bin="$(bin_dir)"
    mkdir -p "$STATE"
    make_pki
    python3 "$FLEET_REPO/scripts/cluster/render.py" "$STATE"
    # Mounts made below the state directory (volumes, network namespaces) propagate to the
    # containers that need them, without touching the propagation of the machine's /.
    if ! mountpoint -q "$STATE"; then
        mount --bind "$STATE" "$STATE"
    fi
    mount --make-rshared "$STATE"
    network_up

    start etcd etcd --name fleet --data-dir "$STATE/etcd" \
        --listen-client-urls "https://127.0.0.1:$ETCD_CLIENT_PORT" \
        --advertise-client-urls "https://127.0.0.1:$ETCD_CLIENT_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "fleet=http://127.0.0.1:$ETCD_PEER_PORT" \
        --listen-metrics-urls http://127.0.0.1:12381 \
        --cert-file "$STATE/pki/etcd-server.crt" --key-file "$STATE/pki/etcd-server.key" \
        --client-cert-auth --trusted-ca-file "$STATE/pki/etcd-ca.crt"
    wait_for etcd 30 curl -sf --max-time 2 http://127.0.0.1:12381/health

    start kube-apiserver "$bin/kube-apiserver" \
        --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$API_PORT" \
        --endpoint-reconciler-type=none \
        --etcd-servers="https://127.0.0.1:$ETCD_CLIENT_PORT" --etcd-cafile="$STATE/pki/etcd-ca.crt" \
        --etcd-certfile="$STATE/pki/apiserver-etcd-client.crt" \
        --etcd-keyfile="$STATE/pki/apiserver-etcd-client.key" \
        --service-cluster-ip-range="$SERVICE_CIDR" \
        --client-ca-file="$STATE/pki/ca.crt" \
        --tls-cert-file="$STATE/pki/apiserver.crt" --tls-private-key-file="$STATE/pki/apiserver.key" \
        --kubelet-client-certificate="$STATE/pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$STATE/pki/apiserver-kubelet-client.key" \
        --kubelet-certificate-authority="$STATE/pki/ca.crt" \
        --kubelet-preferred-address-types=InternalIP \
        --service-account-issuer="https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
        --service-account-key-file="$STATE/pki/sa.pub" \
        --service-account-signing-key-file="$STATE/pki/sa.key" \
        --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
        --anonymous-auth=false --profiling=false \
        --proxy-client-cert-file="$STATE/pki/front-proxy-client.crt" \
        --proxy-client-key-file="$STATE/pki/front-proxy-client.key" \
        --requestheader-client-ca-file="$STATE/pki/front-proxy-ca.crt" \
        --requestheader-allowed-names=front-proxy-client \
        --requestheader-extra-headers-prefix=X-Remote-Extra- \
        --requestheader-group-headers=X-Remote-Group \
        --requestheader-username-headers=X-Remote-User \
        --enable-aggregator-routing=true
    wait_for kube-apiserver 90 https_ok ca.crt admin "$API_URL/readyz"

    start kube-controller-manager "$bin/kube-controller-manager" \
        --kubeconfig="$STATE/kubeconfig/controller-manager" \
        --authentication-kubeconfig="$STATE/kubeconfig/controller-manager" \
        --authorization-kubeconfig="$STATE/kubeconfig/controller-manager" \
        --bind-address=127.0.0.1 --leader-elect=false --profiling=false \
        --use-service-account-credentials=true \
        --service-account-private-key-file="$STATE/pki/sa.key" \
        --root-ca-file="$STATE/pki/ca.crt" \
        --cluster-signing-cert-file="$STATE/pki/ca.crt" \
        --cluster-signing-key-file="$STATE/pki/ca.key"
    start kube-scheduler "$bin/kube-scheduler" \
        --kubeconfig="$STATE/kubeconfig/scheduler" \
        --authentication-kubeconfig="$STATE/kubeconfig/scheduler" \
        --authorization-kubeconfig="$STATE/kubeconfig/scheduler" \
        --bind-address=127.0.0.1 --leader-elect=false --profiling=false
    wait_for kube-controller-manager 60 curl -skf --max-time 2 https://127.0.0.1:10257/healthz
    wait_for kube-scheduler 60 curl -skf --max-time 2 https://127.0.0.1:10259/healthz
    kubectl_ apply --server-side --force-conflicts -f "$STATE/addons.yaml" >/dev/null

    start containerd containerd --config "$STATE/containerd.toml"
    wait_for containerd 30 ctr --address "$STATE/run/containerd.sock" version
    ensure_pause_image

    start kubelet "$bin/kubelet" --config="$STATE/kubelet.yaml" \
        --kubeconfig="$STATE/kubeconfig/kubelet" \
        --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --root-dir="$STATE/kubelet"
    wait_for kubelet 60 curl -sf --max-time 2 http://127.0.0.1:10248/healthz
    start kube-proxy "$bin/kube-proxy" --config="$STATE/kube-proxy.yaml"
    wait_for kube-proxy 60 curl -sf --max-time 2 http://127.0.0.1:10256/healthz
    start coredns "$bin/coredns" -conf "$STATE/Corefile"
    wait_for coredns 30 dig +short +time=1 +tries=1 "@$NODE_IP" "kubernetes.default.svc.$CLUSTER_DOMAIN"
    start metrics-server "$bin/metrics-server" \
        --bind-address="$NODE_IP" --secure-port="$METRICS_SERVER_PORT" \
        --tls-cert-file="$STATE/pki/metrics-server.crt" \
        --tls-private-key-file="$STATE/pki/metrics-server.key" \
        --kubeconfig="$STATE/kubeconfig/metrics-server" \
        --authentication-kubeconfig="$STATE/kubeconfig/metrics-server" \
        --authorization-kubeconfig="$STATE/kubeconfig/metrics-server" \
        --kubelet-certificate-authority="$STATE/pki/ca.crt" \
        --kubelet-preferred-address-types=InternalIP --kubelet-use-node-status-port \
        --metric-resolution=15s
    kubectl_ wait --for=condition=Ready "node/$NODE_NAME" --timeout=120s >/dev/null ||
        die "node $NODE_NAME is not Ready (see $STATE/logs/kubelet.log)"
    wait_for metrics-server 120 kubectl_ get --raw /apis/metrics.k8s.io/v1beta1/nodes
    log "the cluster is up in $(format_elapsed $((SECONDS - started))); kubectl: export KUBECONFIG=$STATE/kubeconfig/admin"
}

# --- images --------------------------------------------------------------------------------------

ctr_() {
    ctr --address "$STATE/run/containerd.sock" -n k8s.io "$@"
}

# import_image ARCHIVE: into the node's containerd, unpacked for the kubelet.
import_image() {
    ctr_ images import --no-unpack=false "$1" >/dev/null ||
        die "containerd refused $1 (see $STATE/logs/containerd.log)"
}

# The pod sandbox: Kubernetes' own pause program (from the kubernetes module's sources), static.
ensure_pause_image() {
    local src archive="$CACHE/images/pause.tar"
    ctr_ images check "name==$PAUSE_IMAGE" 2>/dev/null | grep -q complete && return 0
    if [[ ! -s "$archive" ]]; then
        src="$(cd "$COMPONENTS" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)/build/pause/linux/pause.c"
        [[ -f "$src" ]] || die "no $src: run scripts/cluster.sh build"
        mkdir -p "$CACHE/images"
        gcc -Os -static -o "$CACHE/images/pause" -DVERSION=fleet "$src" ||
            die "pause.c did not compile (a static C library: apt-get install libc6-dev)"
        python3 "$FLEET_REPO/scripts/cluster/oci_image.py" --name "$PAUSE_IMAGE" --out "$archive" \
            --file "$CACHE/images/pause:/pause" --entrypoint '["/pause"]' --user 65535:65535 >/dev/null
    fi
    import_image "$archive"
}

# The Debian mirror and suite this machine's apt uses (the images are built from them).
debian_source() {
    local mirror suite
    suite="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
    mirror="$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -v -- -security | head -n1)"
    [[ -n "$mirror" ]] || mirror="$(awk '$1 == "deb" && $3 !~ /security/ { print $2; exit }' \
        /etc/apt/sources.list 2>/dev/null)"
    [[ -n "$suite" && -n "$mirror" ]] || die "cannot tell this machine's Debian mirror and suite from its apt sources"
    printf '%s %s\n' "$suite" "$mirror"
}

# rootfs NAME PACKAGES [SETUP]: a tar of a minimal Debian root file system with PACKAGES, SETUP
# (shell) run inside it, without apt's lists and caches; cached by its inputs. Prints its path.
rootfs() {
    local name="$1" packages="$2" setup="${3:-}" source key out dir
    source="$(debian_source)"
    key="$(short_hash "$source $packages $setup")"
    out="$CACHE/rootfs/$name-$key.tar"
    if [[ ! -s "$out" ]]; then
        need_cmd debootstrap
        dir="$CACHE/rootfs/$name-$key.d"
        rm -rf "$dir"
        mkdir -p "$dir" "$CACHE/rootfs/debs"
        log "debootstrap $name ($packages)"
        debootstrap --variant=minbase --cache-dir="$CACHE/rootfs/debs" \
            --include="$packages" "${source% *}" "$dir" "${source#* }" >"$CACHE/rootfs/$name.log" 2>&1 ||
            die "debootstrap failed for $name (see $CACHE/rootfs/$name.log)"
        if [[ -n "$setup" ]]; then
            chroot "$dir" /bin/sh -ec "$setup" || die "the set-up of the $name root file system failed"
        fi
        rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/* "$dir"/var/log/* \
            "$dir"/usr/share/doc "$dir"/usr/share/man "$dir"/usr/share/locale
        tar --numeric-owner --sort=name --mtime=@0 -C "$dir" \
            --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf "$out.partial" . &&
            mv "$out.partial" "$out"
        rm -rf "$dir"
    fi
    printf '%s\n' "$out"
}

# The non-root user every fleet image runs as (the Dockerfile's).
NONROOT_SETUP='groupadd --gid 65532 nonroot && useradd --uid 65532 --gid 65532 --no-create-home --shell /usr/sbin/nologin nonroot'

# image NAME ARGS...: scripts/cluster/oci_image.py's archive of NAME, imported into the node.
image() {
    local name="$1" archive
    shift
    archive="$CACHE/images/$(tr '/:' '__' <<<"$name").tar"
    python3 "$FLEET_REPO/scripts/cluster/oci_image.py" --name "$name" --out "$archive" "$@" >/dev/null
    import_image "$archive"
    log "image $name"
}

FLEET_BINARIES=(gateway rental payment book-management user view points dev-broker)

step_images() {
    need_root
    pid_of containerd >/dev/null || die "the cluster is not up: scripts/cluster.sh up"
    ensure_build_prereqs
    local service siege postgres kafka prometheus bin libs started=$SECONDS args=()
    siege="$(rootfs siege "siege,curl,ca-certificates,python3" "$NONROOT_SETUP")"
    image book-rental-fleet/siege:dev --layer "$siege" --entrypoint '["siege"]' --user 65532:65532
    # The postgres user is the postgres image's UID 999, which the manifest runs as; SIGINT, as
    # that image stops it: PostgreSQL's fast shutdown. SIGTERM is its smart shutdown, which waits
    # for every client to leave and so, with the services' pools connected, for the SIGKILL at
    # the end of the pod's grace period (60 s) when the pod is deleted.
    postgres="$(rootfs postgres "postgresql-15" \
        'usermod -u 999 postgres && groupmod -g 999 postgres && rm -rf /var/lib/postgresql/15 /etc/postgresql/15')"
    image "book-rental-fleet/postgres:15-dev" --layer "$postgres" \
        --file "$FLEET_REPO/scripts/cluster/images/postgres-entrypoint.sh:/usr/local/bin/docker-entrypoint.sh" \
        --entrypoint '["/usr/local/bin/docker-entrypoint.sh"]' --user 999:999 --stop-signal SIGINT \
        --env PATH=/usr/lib/postgresql/15/bin:/usr/local/bin:/usr/bin:/bin --port 5432
    # shellcheck source=scripts/lib/kafka.sh
    source "$FLEET_REPO/scripts/lib/kafka.sh"
    libs="$(kafka_classpath)"
    libs="${libs%/\*}"
    kafka="$(rootfs kafka "openjdk-17-jre-headless" \
        'groupadd --gid 1000 appuser && useradd --uid 1000 --gid 1000 --no-create-home --shell /usr/sbin/nologin appuser')"
    args=()
    for bin in "$libs"/*.jar; do args+=(--file "$bin:/opt/kafka/libs/$(basename "$bin"):0644"); done
    image "book-rental-fleet/kafka:$(kafka_version)-dev" --layer "$kafka" "${args[@]}" \
        --file "$FLEET_REPO/scripts/cluster/images/kafka-run.sh:/opt/kafka/bin/kafka-storage.sh" \
        --file "$FLEET_REPO/scripts/cluster/images/kafka-run.sh:/opt/kafka/bin/kafka-server-start.sh" \
        --file "$FLEET_REPO/scripts/kafka/log4j2.properties:/opt/kafka/config/log4j2.properties:0644" \
        --user 1000:1000 --port 9092
    prometheus="$(rootfs prometheus "prometheus" "$NONROOT_SETUP")"
    image "book-rental-fleet/prometheus:dev" --layer "$prometheus" \
        --entrypoint '["/usr/bin/prometheus"]' --user 65532:65532 --port 9090
    # The Dockerfile's build: the eight binaries, release, no features beyond their defaults.
    args=()
    for bin in "${FLEET_BINARIES[@]}"; do args+=(--package "$bin"); done
    log "cargo build --release --locked ${args[*]} --bins"
    cargo build --release --locked "${args[@]}" --bins >&2
    service="$(rootfs service "libssl3,ca-certificates" "$NONROOT_SETUP")"
    for bin in "${FLEET_BINARIES[@]}"; do
        image "book-rental-fleet/$bin:dev" --layer "$service" \
            --file "$CARGO_TARGET_DIR/release/$bin:/usr/local/bin/service" \
            --entrypoint '["/usr/local/bin/service"]' --user 65532:65532 \
            --env HTTP_PORT=8080 --env OPS_PORT=9464 --port 8080 --port 9464
    done
    log "every image is in the node's containerd ($(format_elapsed $((SECONDS - started))))"
}

kafka_version() {
    sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$FLEET_REPO/scripts/kafka/pom.xml"
}

# --- the fleet -----------------------------------------------------------------------------------

need_cluster() {
    pid_of kube-apiserver >/dev/null || die "the cluster is not up: scripts/cluster.sh up"
}

# The StatefulSets' volumes: this node's disk, below the state directory (the stand-in for a
# storage provisioner), each bound to its claim alone and owned by the user its pod runs as.
ensure_volumes() {
    local claim owner dir
    for claim in data-postgres-0:999 data-kafka-0:1000; do
        owner="${claim#*:}"
        claim="${claim%%:*}"
        dir="$STATE/volumes/$claim"
        mkdir -p "$dir"
        chown "$owner:$owner" "$dir"
        chmod 700 "$dir"
        kubectl_ apply -f - >/dev/null <<EOF
{"apiVersion": "v1", "kind": "PersistentVolume",
 "metadata": {"name": "fleet-$claim", "labels": {"app.kubernetes.io/part-of": "book-rental-fleet"}},
 "spec": {"capacity": {"storage": "10Gi"}, "accessModes": ["ReadWriteOnce"],
          "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "",
          "claimRef": {"namespace": "$NAMESPACE", "name": "$claim"},
          "hostPath": {"path": "$dir", "type": "Directory"}}}
EOF
    done
}

step_deploy() {
    need_cluster
    scripts/make-secrets.sh kubernetes/components/dev-cluster/secrets
    ensure_volumes
    kubectl_ apply -k kubernetes/overlays/local
}

step_wait() {
    need_cluster
    fleet_wait
}

step_journey() {
    need_cluster
    fleet_journey "${FLEET_GATEWAY_URL:-http://127.0.0.1:30080}"
}

# With this cluster's kubectl first on PATH and its kubeconfig: for siege/run and the like.
with_cluster_kubectl() {
    PATH="$(bin_dir):$PATH" KUBECONFIG="$STATE/kubeconfig/admin" "$@"
}

step_hpa() {
    need_cluster
    with_cluster_kubectl siege/run hpa
}

step_rollout() {
    need_cluster
    with_cluster_kubectl siege/run cluster-rollout
}

step_faults() {
    need_cluster
    with_cluster_kubectl siege/run cluster-faults
}

DASHBOARD_URL="http://127.0.0.1:30090/consoles/fleet.html"

# The fleet's dashboard (Prometheus's console page, kubernetes/overlays/local) as headless
# Chromium shows it: siege/results/cluster-dashboard.png.
step_dashboard() {
    need_cluster
    local out="$FLEET_REPO/siege/results/cluster-dashboard.png" profile
    curl -sf --max-time 5 "$DASHBOARD_URL" >/dev/null ||
        die "the dashboard does not answer at $DASHBOARD_URL (is the fleet deployed? scripts/cluster.sh wait)"
    need_cmd chromium chromium
    profile="$(mktemp -d)"
    # No background networking, updates or sync: this machine reaches nothing outside.
    chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$profile" --hide-scrollbars --window-size=1150,2500 \
        --virtual-time-budget=8000 --screenshot="$out" "$DASHBOARD_URL?duration=900" 2>/dev/null
    rm -rf "$profile"
    [[ -s "$out" ]] || die "Chromium wrote no screenshot"
    log "the dashboard: $DASHBOARD_URL; its picture: $out"
}

# What must hold on this cluster, from inside a pod: the cluster DNS answers the cluster's own
# names and nothing else, and a connection to an address outside this machine fails at once
# (no route), as does one to a Service address nothing is behind.
step_check() {
    need_cluster
    local pod=fleet-check out
    kubectl_ -n default delete pod "$pod" --ignore-not-found --wait=true >/dev/null
    kubectl_ -n default run "$pod" --image=book-rental-fleet/siege:dev --restart=Never \
        --command -- python3 -c "$(cat "$FLEET_REPO/scripts/cluster/isolation_check.py")" >/dev/null
    kubectl_ -n default wait --for=jsonpath='{.status.phase}'=Succeeded "pod/$pod" --timeout=90s >/dev/null || true
    out="$(kubectl_ -n default logs "$pod")"
    printf '%s\n' "$out"
    kubectl_ -n default delete pod "$pod" --wait=false >/dev/null
    grep -q '^isolated$' <<<"$out" || die "the cluster is not isolated as it must be (above)"
}

step_diagnostics() {
    need_cluster
    step_status
    fleet_diagnostics
}

# --- down ----------------------------------------------------------------------------------------

stop_process() {
    local name="$1" pid tries=0
    pid="$(pid_of "$name")" || {
        rm -f "$STATE/pids/$name.pid"
        return 0
    }
    log "stopping $name (pid $pid)"
    # The supervisor and what it runs share one process group.
    kill -TERM -- "-$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && ((tries++ < 20)); do sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$STATE/pids/$name.pid"
}

# The chains kubelet makes (its firewall for 127.0.0.0/8, its canaries, the hint of which
# iptables it uses), which kube-proxy's clean-up leaves, in IPv4 and IPv6.
kubelet_chains_down() {
    local tool table chain
    for tool in iptables ip6tables; do
        command -v "$tool" >/dev/null 2>&1 || continue
        for chain in INPUT OUTPUT; do
            while "$tool" -D "$chain" -j KUBE-FIREWALL 2>/dev/null; do :; done
        done
        for table in filter nat mangle; do
            for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
                "$tool" -t "$table" -F "$chain" 2>/dev/null || true
                "$tool" -t "$table" -X "$chain" 2>/dev/null || true
            done
        done
    done
}

step_down() {
    need_root
    local purge=0 i mnt
    [[ "${1:-}" == --purge ]] && purge=1
    [[ -d "$STATE" ]] || {
        log "nothing to stop: $STATE does not exist"
        network_down
        return 0
    }
    # The pods first, while containerd still runs: their containers and sandboxes (each shim is a
    # process of its own, outside containerd's process group).
    stop_process kubelet
    if pid_of containerd >/dev/null; then
        for i in $(ctr_ tasks ls -q 2>/dev/null); do
            ctr_ tasks kill -s SIGKILL "$i" >/dev/null 2>&1 || true
        done
        sleep 1
        for i in $(ctr_ tasks ls -q 2>/dev/null); do
            ctr_ tasks delete -f "$i" >/dev/null 2>&1 || true
        done
    fi
    # Shims left behind (containerd gone before them): their command line names this state.
    pkill -KILL -f "containerd-shim.*-address $STATE/run/containerd.sock" 2>/dev/null || true
    for ((i = ${#PROCESSES[@]} - 1; i >= 0; i--)); do
        stop_process "${PROCESSES[i]}"
    done
    if [[ -x "$(bin_dir)/kube-proxy" ]]; then
        "$(bin_dir)/kube-proxy" --cleanup >/dev/null 2>&1 || true
    fi
    kubelet_chains_down
    # Every mount below the state directory, deepest first: volumes, overlays, network
    # namespaces, the shared bind of the directory itself.
    findmnt -rn -o TARGET | { grep -F "$STATE" || true; } | sort -r | while read -r mnt; do
        umount -l "$mnt" 2>/dev/null || true
    done
    network_down
    if [[ $purge -eq 1 ]]; then
        log "removing $STATE"
        rm -rf "$STATE"
    fi
    log "the cluster is down"
}

# rss_mb PID: the resident memory of PID and every process below it, in MB.
rss_mb() {
    local pid="$1" kb child
    kb="$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)"
    for child in $(pgrep -P "$pid"); do
        kb=$((kb + $(rss_mb "$child") * 1024))
    done
    echo $((kb / 1024))
}

step_status() {
    local name pid
    for name in "${PROCESSES[@]}"; do
        if pid="$(pid_of "$name")"; then
            printf '%-24s pid %-8s %5s MB\n' "$name" "$pid" "$(rss_mb "$pid")"
        else
            printf '%-24s not running\n' "$name"
        fi
    done
    pid_of kube-apiserver >/dev/null || return 0
    kubectl_ get nodes -o wide || true
    kubectl_ get pods -A -o wide || true
}

# Sourced (scripts/cluster/tests): the functions alone.
[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0
[[ $# -ge 1 ]] || {
    usage >&2
    exit 2
}
cd "$FLEET_REPO"
case "$1" in
    build) step_build ;;
    up) step_up ;;
    down) step_down "${2:-}" ;;
    status) step_status ;;
    images) step_images ;;
    check) step_check ;;
    deploy) step_deploy ;;
    wait) step_wait ;;
    journey) step_journey ;;
    hpa) step_hpa ;;
    rollout) step_rollout ;;
    faults) step_faults ;;
    dashboard) step_dashboard ;;
    diagnostics) step_diagnostics ;;
    -h | --help) usage ;;
    *) die "unknown step '$1' (see --help)" ;;
esac
