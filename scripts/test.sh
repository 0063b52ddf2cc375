#!/usr/bin/env bash
# `make test`: every check the project has, against real local endpoints.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

step() { printf '\n== %s\n' "$*"; }

step "Python tools"
ensure_venv

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cfn-lint"
"$VENV/bin/cfn-lint" infra/*.yaml

step "cargo test (moto server)"
export PATH=$VENV/bin:$PATH
start_moto
cargo test --workspace --locked
