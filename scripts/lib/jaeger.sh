# shellcheck shell=bash
# Jaeger for scripts/dev.sh --with-tracing: the all-in-one binary (OTLP receivers, in-memory
# storage, query API and UI in one process), built once from its Go module and kept outside the
# clone beside the build directory, as the other tools are. Source it; do not run it.
#
#   ensure_jaeger LOG   build the binary unless it is there (the build's output goes to LOG) and
#                       set FLEET_JAEGER_BIN
#
# Needs Go 1.21 or newer (it fetches the Go toolchain Jaeger's go.mod asks for when it is older)
# and the Go module proxy. The first build takes minutes; later runs reuse the binary.
# FLEET_JAEGER_BIN names a Jaeger binary to use instead.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The Go module's tag of a Jaeger v2 release: v1.75.0 is Jaeger 2.12.0, the image
# kubernetes/components/tracing and docker/compose.yaml run, so all three read
# kubernetes/components/tracing/jaeger-config.yaml with the same code.
FLEET_JAEGER_MODULE_VERSION=v1.75.0
# Its configuration, shared with the Kubernetes component and compose (read by scripts/dev.sh).
# shellcheck disable=SC2034
FLEET_JAEGER_CONFIG="$FLEET_REPO/kubernetes/components/tracing/jaeger-config.yaml"

jaeger_cache_dir() {
    printf '%s\n' "$(dirname "$CARGO_TARGET_DIR")/dev-tools/jaeger-$FLEET_JAEGER_MODULE_VERSION"
}

ensure_jaeger() {
    local build_log="$1" bin work
    if [[ -n "${FLEET_JAEGER_BIN:-}" ]]; then
        [[ -x "$FLEET_JAEGER_BIN" ]] || die "FLEET_JAEGER_BIN=$FLEET_JAEGER_BIN is not an executable"
        return 0
    fi
    bin="$(jaeger_cache_dir)/jaeger"
    FLEET_JAEGER_BIN="$bin"
    [[ -x "$bin" ]] && return 0
    command -v go >/dev/null 2>&1 ||
        die "--with-tracing builds Jaeger from its Go module: install Go 1.21 or newer, or set FLEET_JAEGER_BIN"
    log "building Jaeger (github.com/jaegertracing/jaeger/cmd/jaeger@$FLEET_JAEGER_MODULE_VERSION) into $bin:" \
        "once, several minutes (log: $build_log)"
    work="$(mktemp -d)"
    # A throw-away module that only names Jaeger; GOFLAGS=-mod=mod lets the go command write its
    # go.sum whatever the caller's GOFLAGS say. Built to a temporary name, so that an interrupted
    # build leaves nothing that looks usable.
    if ! (
        cd "$work" &&
            export GOFLAGS=-mod=mod &&
            go mod init fleet-dev-tools/jaeger &&
            go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$FLEET_JAEGER_MODULE_VERSION" &&
            mkdir -p "$(dirname "$bin")" &&
            go build -trimpath -o "$bin.partial" github.com/jaegertracing/jaeger/cmd/jaeger
    ) >"$build_log" 2>&1; then
        tail -n 20 "$build_log" >&2 || true
        rm -rf "$work" "$bin.partial"
        die "could not build Jaeger $FLEET_JAEGER_MODULE_VERSION (log: $build_log)"
    fi
    mv "$bin.partial" "$bin"
    rm -rf "$work"
    log "built $bin"
}
