#!/usr/bin/env bash
# `make demo`: the whole system on this machine, no AWS account needed.
#   scripts/demo.sh [kedaform demo options]          on the local cluster (scripts/cluster.sh):
#                                                    real KEDA 2.20.2 and HPA controller
#   scripts/demo.sh --fast [kedaform demo options]   against a local moto, a stand-in for KEDA + HPA
# Everything started here is stopped on exit, also on Ctrl-C.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
ensure_venv
cargo build --quiet --locked --package consumer --package kedaform-cli
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [ "${1:-}" = "--fast" ]; then
  shift
  start_moto
  exec "$TARGET/debug/kedaform" demo --out "$TARGET/demo" "$@"
fi

# A namespace and run directory of the demo's own; the first run builds the control plane
# from its Go modules (about 11 minutes on 2 cores, once; see docs/src/testing/local-cluster.md).
export KEDAFORM_NETNS=kedaform-demo KEDAFORM_CLUSTER_DIR=${KEDAFORM_CACHE:-$HOME/.cache/kedaform}/cluster/demo-run
images=$(mktemp)
echo "{\"kedaform/consumer:local\": {\"binary\": \"$TARGET/debug/consumer\"}}" > "$images"
trap 'scripts/cluster.sh down; rm -f "$images"; stop_started' EXIT
scripts/cluster.sh down > /dev/null
KEDAFORM_EXTRA_IMAGES=$images scripts/cluster.sh up
RUST_LOG=${RUST_LOG:-warn} scripts/cluster.sh exec "$TARGET/debug/kedaform" --kubeconfig "$KEDAFORM_CLUSTER_DIR/kubeconfig" demo \
  --out "$TARGET/demo" --consumer "$TARGET/debug/consumer" "$@"
