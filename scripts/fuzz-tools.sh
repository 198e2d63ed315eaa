#!/usr/bin/env bash
# Install the API fuzzer the gateway's fuzz test runs (gateway/tests/api/fuzz.rs), schemathesis,
# and the OpenAPI validator its docs test runs, openapi-spec-validator, pinned with every
# dependency in scripts/fuzz-requirements.txt, from PyPI wheels into a venv outside the clone,
# $CARGO_TARGET_DIR/../fuzz-tools/venv (reused while the pins match). Prints the path of the
# schemathesis executable on stdout (the validator is beside it); the tests find it through
# FLEET_SCHEMATHESIS, which scripts/test.sh exports:
#
#   export FLEET_SCHEMATHESIS="$(scripts/fuzz-tools.sh)"
#
# usage: scripts/fuzz-tools.sh
#
# FLEET_FUZZ_TOOLS_VENV overrides the venv's place.

# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

case "${1:-}" in
    "") ;;
    -h | --help)
        sed -n '2,/^$/s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    *) die "unknown argument '$1' (see --help)" ;;
esac

requirements="$FLEET_REPO/scripts/fuzz-requirements.txt"
venv="$(fuzz_tools_venv)"
stamp="$venv/.requirements"

if ! [[ -x "$venv/bin/schemathesis" && -x "$venv/bin/openapi-spec-validator" ]] ||
    ! cmp -s "$requirements" "$stamp"; then
    need_cmd python3
    python3 -c 'import venv, ensurepip' 2>/dev/null || apt_install python3-venv
    log "installing schemathesis and openapi-spec-validator into $venv (scripts/fuzz-requirements.txt)"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --only-binary=:all: --requirement "$requirements" >&2 ||
        die "could not install schemathesis"
    cp "$requirements" "$stamp"
fi
printf '%s\n' "$venv/bin/schemathesis"
