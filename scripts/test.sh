#!/usr/bin/env bash
# `make test`: every check the project has, against real local endpoints.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

step() { printf '\n== %s\n' "$*"; }

step "Python tools"
ensure_venv
ensure_venv_at "$SAM_VENV" "$ROOT/scripts/requirements-sam.txt"
ensure_venv_at "$CHECKOV_VENV" "$ROOT/scripts/requirements-checkov.txt"
step "KEDA $KEDA_VERSION's release files (KEDAFORM_KEDA_MIRROR, else downloaded once; digests checked)"
ensure_keda_release
echo "$KEDAFORM_KEDA_MIRROR"
export SAM_CLI_TELEMETRY=0

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The cluster tests are no target of a plain `cargo test` (they need the local cluster).
cargo clippy --locked -p kedaform-tests --test cluster -- -D warnings

step "the workload images build no Kubernetes client, Lambda runtime, EKS/IAM SDK or deployer"
for workload in producer consumer; do
  if cargo tree --locked -p "$workload" -e normal --prefix none \
    | grep -E '^(kube|k8s-openapi|lambda_runtime|aws-sdk-eks|aws-sdk-iam|kedaform) v'; then
    echo "the $workload image would build the crates above" >&2
    exit 1
  fi
done
echo "producer and consumer: none (cargo tree -e normal, what their images build)"

step "cargo doc (every public item documented, no broken link)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --lib --no-deps --locked

step "the docs book: the CLI reference from --help, mdBook, every link inside it"
scripts/docs.sh
git diff --quiet -- docs/src/reference/cli.md || {
  echo "docs/src/reference/cli.md differs from the program's --help: run make docs and commit it" >&2; exit 1; }

step "the rehearsal driver's own checks (scripts/rehearsal)"
(cd scripts && AWS_DEFAULT_REGION=us-east-1 "$VENV/bin/python" -m unittest -q rehearsal.test_rehearsal)

step "cfn-lint"
"$VENV/bin/cfn-lint" infra/*.yaml

step "sam validate --lint"
for template in infra/*.yaml; do
  "$SAM_VENV/bin/sam" validate --lint --template-file "$template"
done

step "checkov (every skip carries its reason in the template)"
"$CHECKOV_VENV/bin/checkov" -d infra --framework cloudformation --quiet --compact --skip-download

step "sam build (offline: cargo-lambda and zig from PyPI)"
# The build dir sits in the Cargo target dir, out of the clone; cargo-lambda's own build uses
# CARGO_TARGET_DIR, so a rebuild of unchanged code is quick.
SAM_BUILD=${CARGO_TARGET_DIR:-$ROOT/target}/sam-build
PATH=$SAM_VENV/bin:$PATH "$SAM_VENV/bin/sam" build --build-dir "$SAM_BUILD"
# The Lambdas are in the nested deployer stack (infra/deployer.yaml), built under its logical id.
for function in TrustPolicyFunction DeployerFunction; do
  # An x86_64 ELF executable named bootstrap, as provided.al2023 runs it.
  head -c 20 "$SAM_BUILD/Deployer/$function/bootstrap" | od -An -tx1 | tr -d ' \n' | grep -q '^7f454c46.*3e00$' || {
    echo "sam build did not produce an x86_64 Linux bootstrap for $function" >&2; exit 1; }
done

step "CDK constructs (integrations/cdk): npm ci, tsc, vitest, cdk synth, jsii packages (npm, Python, Java, Go source), the CDK-Python app, cfn-lint"
scripts/cdk.sh "$SAM_BUILD/Deployer"

step "moto server"
export PATH=$VENV/bin:$PATH
start_moto

step "sam package (the upload sam deploy does, to moto's S3)"
bucket=kedaform-sam-artifacts
aws s3api create-bucket --bucket "$bucket" > /dev/null
# Its upload progress goes to the log, shown only when it fails.
"$SAM_VENV/bin/sam" package --template-file "$SAM_BUILD/template.yaml" --s3-bucket "$bucket" \
  --output-template-file "$SAM_BUILD/packaged.yaml" > "$SAM_BUILD/package.log" 2>&1 || {
  cat "$SAM_BUILD/package.log" >&2; exit 1; }
# The nested deployer template is uploaded too, with its code and its Serverless Application
# Repository files (license, readme); what CloudFormation will fetch is checked from there.
nested=$(grep -o "Location: .*/$bucket/[0-9a-f]*\.template" "$SAM_BUILD/packaged.yaml" | sed "s#.*/$bucket/#s3://$bucket/#")
[ -n "$nested" ] || { echo "sam package uploaded no nested deployer template" >&2; exit 1; }
aws s3 cp --quiet "$nested" "$SAM_BUILD/packaged-deployer.yaml"
for file in LicenseUrl ReadmeUrl; do
  grep -q "$file: s3://$bucket/" "$SAM_BUILD/packaged-deployer.yaml" || {
    echo "sam package did not upload the deployer's $file" >&2; exit 1; }
done
uploads=$(grep -o "CodeUri: s3://$bucket/[0-9a-f]*" "$SAM_BUILD/packaged-deployer.yaml" | cut -d' ' -f2)
[ "$(echo "$uploads" | wc -w)" -eq 2 ] || { echo "expected 2 uploaded functions, got: $uploads" >&2; exit 1; }
for uri in $uploads; do
  aws s3 cp --quiet "$uri" "$SAM_BUILD/upload.zip"
  # What Lambda unpacks: one executable named bootstrap.
  python3 -c 'import sys, zipfile
z = zipfile.ZipFile(sys.argv[1]); names = z.namelist()
mode = z.getinfo("bootstrap").external_attr >> 16 if names == ["bootstrap"] else 0
sys.exit(0 if mode & 0o111 else f"{sys.argv[2]}: {names} is not one executable bootstrap")' "$SAM_BUILD/upload.zip" "$uri"
  echo "$uri: bootstrap, executable"
done

step "cargo test (moto server)"
cargo test --workspace --locked

step "local cluster: upstream kube-apiserver, controller-manager, scheduler, kwok, KEDA 2.20.2"
# The first run builds them from their Go modules (docs/src/testing/local-cluster.md); later runs take them from the cache.
# A namespace and run directory of its own, so that a `make cluster` of the developer's stays up.
export KEDAFORM_NETNS=kedaform-test KEDAFORM_CLUSTER_DIR=${KEDAFORM_CACHE:-$HOME/.cache/kedaform}/cluster/test-run
trap 'scripts/cluster.sh down; stop_started' EXIT
scripts/cluster.sh down > /dev/null
scripts/cluster.sh up
step "cargo test --test cluster (inside the cluster's network namespace)"
cargo test --locked --test cluster --no-run
# One test at a time: while KEDA's metrics APIService is registered but not yet served (during
# an install), the namespace controller cannot finish any namespace's deletion.
scripts/cluster.sh exec cargo test --locked --offline --test cluster -- --test-threads=1
scripts/cluster.sh down

step "make cluster, then make cluster-stop, on a fresh clone (it makes its own venv)"
fresh=$(mktemp -d)
git clone --quiet "$ROOT" "$fresh/kedaform"
fresh_make() {
  (cd "$fresh/kedaform" && env -u KEDAFORM_VENV KEDAFORM_NETNS=kedaform-fresh KEDAFORM_CLUSTER_DIR="$fresh/cluster" make "$@")
}
if ! fresh_make cluster > "$fresh/cluster.log" 2>&1 || ! grep -q "^reach it from the namespace" "$fresh/cluster.log"; then
  cat "$fresh/cluster.log" >&2
  fresh_make cluster-stop > /dev/null 2>&1 || true
  exit 1
fi
fresh_make cluster-stop > /dev/null
if ip netns list | grep -q '^kedaform-fresh'; then echo "make cluster-stop left its network namespace" >&2; exit 1; fi
rm -rf "$fresh"
echo "up, healthy, and stopped"

step "make demo, 30 s: real KEDA and HPA controller scale the consumers on the local cluster"
DEMO_SECONDS=30 scripts/demo.sh

step "rehearsal, short: a failed Create rolled back and a Create IAM refuses (make rehearse runs it all)"
KEDAFORM_SAM_BUILD=$SAM_BUILD scripts/rehearse.sh short
