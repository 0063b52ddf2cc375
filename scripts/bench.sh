#!/usr/bin/env bash
# `make bench`: builds the Lambda zips as they ship, then prints one table of every
# benchmark and writes it to $TARGET/bench.json.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_venv
ensure_venv_at "$SAM_VENV" "$ROOT/scripts/requirements-sam.txt"
# cargo-lambda and zig come with the SAM CLI's venv, the same pins `sam build` uses; its
# python first, because cargo-lambda finds zig through `python3 -m ziglang`.
export PATH=$SAM_VENV/bin:$VENV/bin:$PATH
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

echo "== cargo lambda build (release, x86_64, zip)"
cargo lambda build --release --x86-64 --output-format zip --package trust-policy --package kube-resources

echo "== release workloads"
cargo build --release --locked --package consumer

start_moto

echo "== benchmarks"
KEDAFORM_LAMBDA_DIR=$TARGET/lambda \
KEDAFORM_LAMBDA_BINARIES=$TARGET/x86_64-unknown-linux-gnu/release \
KEDAFORM_BENCH_JSON=$TARGET/bench.json \
KEDAFORM_CONSUMER_BIN=$TARGET/release/consumer \
KEDAFORM_MOTO_PID=$MOTO_PID \
  cargo bench --package kedaform-tests --bench bench
