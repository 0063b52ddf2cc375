#!/usr/bin/env bash
# `make demo`: the whole system on this machine, against a local moto; no AWS account needed.
# Everything started here is stopped by PID on exit, also on Ctrl-C.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
ensure_venv
cargo build --quiet --locked --package consumer --package kedaform-cli
start_moto
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
"$TARGET/debug/kedaform" demo --out "$TARGET/demo" "$@"
