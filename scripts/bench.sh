#!/usr/bin/env bash
# `make bench`: builds the Lambda zips as they ship, then prints one table of every
# benchmark and writes it to $TARGET/bench.json.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_venv
ensure_venv_at "$SAM_VENV" "$ROOT/scripts/requirements-sam.txt"
ensure_keda_release
# cargo-lambda and zig come with the SAM CLI's venv, the same pins `sam build` uses; its
# python first, because cargo-lambda finds zig through `python3 -m ziglang`.
export PATH=$SAM_VENV/bin:$VENV/bin:$PATH
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

echo "== the consumer as its image ships it (profile workload)"
cargo build --profile workload --locked --package consumer

echo "== Custom::KedaInstall on the local cluster (scripts/cluster.sh)"
cargo build --release --locked --package kedaform-cli
export KEDAFORM_NETNS=kedaform-bench KEDAFORM_CLUSTER_DIR=${KEDAFORM_CACHE:-$HOME/.cache/kedaform}/cluster/bench-run
trap 'scripts/cluster.sh down; stop_started' EXIT
scripts/cluster.sh down > /dev/null
scripts/cluster.sh up
run=$KEDAFORM_CLUSTER_DIR
scripts/cluster.sh exec "$VENV/bin/aws" s3api create-bucket --bucket keda-mirror > /dev/null
scripts/cluster.sh exec "$VENV/bin/aws" s3 cp --quiet "$KEDAFORM_KEDA_MIRROR/keda-$KEDA_VERSION.yaml" s3://keda-mirror/keda.yaml
# The CLI runs the handler the kube Lambda runs (same library path, no Lambda runtime around it).
/usr/bin/time -f '%e %M' -o "$run/install.time" scripts/cluster.sh exec "$TARGET/release/kedaform" \
  --kubeconfig "$run/kubeconfig" keda install --cluster local \
  --operator-role arn:aws:iam::123456789012:role/keda-operator --manifest s3://keda-mirror/keda.yaml > "$run/install.log"
read -r seconds rss < "$run/install.time"
requests=$(jq -c 'select(.userAgent // "" | startswith("kedaform/"))' "$run/audit.log" | wc -l)
# The largest manifests accepted: 16 MiB of bytes (installed), 1,000,000 nodes (parsed and
# rendered: its ConfigMaps are as big as etcd takes).
python3 scripts/largest-manifests.py "$KEDAFORM_KEDA_MIRROR/keda-$KEDA_VERSION.yaml" "$run"
scripts/cluster.sh exec "$VENV/bin/aws" s3 cp --quiet "$run/bytes.yaml" s3://keda-mirror/bytes.yaml
/usr/bin/time -f '%e %M' -o "$run/bytes.time" scripts/cluster.sh exec "$TARGET/release/kedaform" \
  --kubeconfig "$run/kubeconfig" keda install --cluster local \
  --operator-role arn:aws:iam::123456789012:role/keda-operator --manifest s3://keda-mirror/bytes.yaml > "$run/bytes.log"
read -r bytes_seconds bytes_rss < "$run/bytes.time"
/usr/bin/time -f '%e %M' -o "$run/nodes.time" "$TARGET/release/kedaform" keda render \
  --operator-role arn:aws:iam::123456789012:role/keda-operator --manifest "$run/nodes.yaml" > /dev/null
read -r nodes_seconds nodes_rss < "$run/nodes.time"
echo "{\"seconds\": $seconds, \"peak_rss_kib\": $rss, \"requests\": $requests,
  \"largest_bytes\": $(stat -c %s "$run/bytes.yaml"), \"largest_seconds\": $bytes_seconds, \"largest_peak_rss_kib\": $bytes_rss,
  \"nodes_seconds\": $nodes_seconds, \"nodes_peak_rss_kib\": $nodes_rss}" > "$TARGET/cluster-bench.json"
scripts/cluster.sh down

echo "== KEDA upgraded in place (2.19.0 -> 2.20.2), then KEDA's Helm chart installed (a fresh local cluster)"
ensure_keda_chart
scripts/cluster-build.sh helm
scripts/cluster.sh up
bin=${KEDAFORM_CACHE:-$HOME/.cache/kedaform}/cluster/bin
scripts/cluster.sh exec "$VENV/bin/aws" s3api create-bucket --bucket keda-mirror > /dev/null
scripts/cluster.sh exec "$VENV/bin/aws" s3 cp --quiet "$bin/keda-2.19.0.yaml" s3://keda-mirror/keda-2.19.0.yaml
scripts/cluster.sh exec "$VENV/bin/aws" s3 cp --quiet "$KEDAFORM_KEDA_MIRROR/keda-$KEDA_VERSION.yaml" s3://keda-mirror/keda.yaml
kedaform_keda=("$TARGET/release/kedaform" --kubeconfig "$run/kubeconfig" keda)
operator=(--cluster local --operator-role arn:aws:iam::123456789012:role/keda-operator)
requests_of() { jq -c --arg agent "$1" 'select(.userAgent // "" | startswith($agent))' "$run/audit.log" | wc -l; }
scripts/cluster.sh exec "${kedaform_keda[@]}" install "${operator[@]}" --version 2.19.0 \
  --manifest s3://keda-mirror/keda-2.19.0.yaml > "$run/previous.log"
before=$(requests_of kedaform/)
/usr/bin/time -f '%e %M' -o "$run/upgrade.time" scripts/cluster.sh exec "${kedaform_keda[@]}" install "${operator[@]}" \
  --manifest s3://keda-mirror/keda.yaml > "$run/upgrade.log"
read -r upgrade_seconds upgrade_rss < "$run/upgrade.time"
upgrade_requests=$(( $(requests_of kedaform/) - before ))
scripts/cluster.sh exec "${kedaform_keda[@]}" uninstall "${operator[@]}" --manifest s3://keda-mirror/keda.yaml > "$run/uninstall.log"
# helm install --wait (kstatus: Deployments available, CRDs established) of the same release,
# KEDA's own chart at its defaults, on the same cluster.
/usr/bin/time -f '%e %M' -o "$run/helm.time" scripts/cluster.sh exec "$bin/helm" install keda "$KEDAFORM_KEDA_CHART" \
  --kubeconfig "$run/kubeconfig" --namespace keda --create-namespace --wait --timeout 10m > "$run/helm.log"
read -r helm_seconds helm_rss < "$run/helm.time"
helm_requests=$(requests_of Helm/)
echo "{\"upgrade_seconds\": $upgrade_seconds, \"upgrade_peak_rss_kib\": $upgrade_rss, \"upgrade_requests\": $upgrade_requests,
  \"helm_seconds\": $helm_seconds, \"helm_peak_rss_kib\": $helm_rss, \"helm_requests\": $helm_requests}" > "$TARGET/lifecycle-bench.json"
scripts/cluster.sh down

echo "== make rehearse (its own cluster)"
KEDAFORM_REHEARSAL_REPORT=$TARGET/rehearsal-bench.json scripts/rehearse.sh full

# After the rehearsal, whose `sam build` moves the binaries it builds out of the shared target
# directory.
echo "== cargo lambda build (release, x86_64, zip)"
cargo lambda build --release --x86-64 --output-format zip --package trust-policy --package kube-resources

start_moto
start_elasticmq
start_gofakes3

echo "== benchmarks"
KEDAFORM_LAMBDA_DIR=$TARGET/lambda \
KEDAFORM_LAMBDA_BINARIES=$TARGET/x86_64-unknown-linux-gnu/release \
KEDAFORM_BENCH_JSON=$TARGET/bench-rows.json \
KEDAFORM_CONSUMER_BIN=$TARGET/workload/consumer \
KEDAFORM_MOTO_PID=$MOTO_PID \
KEDAFORM_CLUSTER_BENCH=$TARGET/cluster-bench.json \
KEDAFORM_LIFECYCLE_BENCH=$TARGET/lifecycle-bench.json \
KEDAFORM_REHEARSAL_BENCH=$TARGET/rehearsal-bench.json \
KEDAFORM_PYTHON=$VENV/bin/python \
KEDAFORM_ELASTICMQ_URL=$ELASTICMQ_URL \
KEDAFORM_GOFAKES3_URL=$GOFAKES3_URL \
KEDAFORM_GOFAKES3_PID=$GOFAKES3_PID \
  cargo bench --package kedaform-tests --bench bench

echo "== the benchmarks page (docs/src/benchmarks.md) from target/bench.json"
changes=$(if git diff --quiet HEAD -- 2> /dev/null; then echo committed; else echo uncommitted; fi)
python3 - "$TARGET/bench-rows.json" "$TARGET/bench.json" "$(git rev-parse --short HEAD)" "$changes" << 'PY'
import datetime, json, os, sys
rows, out, commit, changes = sys.argv[1:5]
cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "unknown CPU")
memory = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
json.dump({"command": "make bench", "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "commit": commit, "uncommitted": changes == "uncommitted", "machine": {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(memory / 1024 / 1024)},
           "rows": json.load(open(rows))}, open(out, "w"), indent=1)
PY
python3 scripts/docs/benchmarks.py "$TARGET/bench.json" docs/src/benchmarks.md
echo "written: $TARGET/bench.json, docs/src/benchmarks.md"

