#!/usr/bin/env bash
# `make rehearse`: `sam deploy` of infra/template.yaml rehearsed on this machine
# (docs/src/testing/rehearsal.md). What `sam build` made is packaged into the rehearsal's moto and driven through
# Create, Update, a failed Update and Delete, then a failed Create, by scripts/rehearsal: the
# functions' zips run under AWS's Lambda Runtime Interface Emulator with their own roles, moto
# enforces IAM, and the kube Lambda authenticates to the local cluster through
# aws-iam-authenticator and STS.
#   scripts/rehearse.sh [full|short]    short: the failed Create and the IAM check (make test)
#   $KEDAFORM_REHEARSAL_REPORT: where to write its measurements as JSON (make bench)
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"
scenario=${1:-full}
CACHE=${KEDAFORM_CACHE:-$HOME/.cache/kedaform}
BIN=$CACHE/cluster/bin

ensure_venv
ensure_venv_at "$SAM_VENV" "$ROOT/scripts/requirements-sam.txt"
export SAM_CLI_TELEMETRY=0
SAM_BUILD=${KEDAFORM_SAM_BUILD:-}
if [ -z "$SAM_BUILD" ]; then
  SAM_BUILD=${CARGO_TARGET_DIR:-$ROOT/target}/sam-build
  PATH=$SAM_VENV/bin:$PATH "$SAM_VENV/bin/sam" build --build-dir "$SAM_BUILD" > /dev/null
fi
scripts/cluster-build.sh etcd k8s kwok keda rie authenticator

# KEDA's release manifest, which the kube Lambda downloads from GitHub releases: served by the
# rehearsal's public endpoint from the checked copy of ensure_keda_release.
ensure_keda_release

# A cluster of the rehearsal's own; its API server authenticates bearer tokens through
# aws-iam-authenticator (the certificate and webhook kubeconfig made by its `init`) and issues
# service-account tokens as an EKS OIDC issuer. The AWS its pods see is the rehearsal's moto
# (on 127.0.0.1:5000 in the namespace), their STS the rehearsal's public endpoint.
export KEDAFORM_NETNS=kedaform-rehearse KEDAFORM_CLUSTER_DIR=$CACHE/cluster/rehearse-run
state=$CACHE/cluster/rehearse-authenticator
work=$CACHE/rehearse
cleanup() {
  scripts/cluster.sh down > /dev/null || true
  rm -rf "/etc/netns/$KEDAFORM_NETNS"
  stop_started
}
trap cleanup EXIT
scripts/cluster.sh down > /dev/null
rm -rf "$state" "$work"
mkdir -p "$state" "$work"
(cd "$state" && "$BIN/aws-iam-authenticator" init -i kedaform-rehearsal > init.log 2>&1)
(cd scripts && "$VENV/bin/python" -c 'import sys; from rehearsal.public import make_ca, HOSTS; make_ca(sys.argv[1], HOSTS)' "$work/ca")
issuer=https://oidc.eks.us-east-1.amazonaws.com/id/$(openssl rand -hex 16 | tr a-f A-F)
export KEDAFORM_APISERVER_ARGS="--authentication-token-webhook-config-file=$state/aws-iam-authenticator.kubeconfig --authentication-token-webhook-cache-ttl=5s"
export KEDAFORM_SERVICE_ACCOUNT_ISSUER=$issuer KEDAFORM_CLUSTER_MOTO=external
export KEDAFORM_POD_ENV="AWS_ENDPOINT_URL_STS=https://sts.us-east-1.amazonaws.com SSL_CERT_FILE=$work/ca/ca.pem"
# The public names the system reaches (STS, GitHub releases) resolve, inside the namespace, to
# an address of the rehearsal's (ip netns exec mounts this file as /etc/hosts).
public=198.51.100.1
mkdir -p "/etc/netns/$KEDAFORM_NETNS"
printf '127.0.0.1 localhost\n%s sts.amazonaws.com sts.us-east-1.amazonaws.com github.com\n' "$public" > "/etc/netns/$KEDAFORM_NETNS/hosts"
scripts/cluster.sh up
ip netns exec "$KEDAFORM_NETNS" ip addr add "$public/32" dev lo

# The CDK apps, synthesized as their users would with the functions sam build made: the
# TypeScript example for this cluster and its OIDC issuer, and scale-eks-with-keda's CDK-Python
# app on kedaform (it makes its own cluster), from the wheel jsii builds (scripts/cdk.sh).
cdk_out=()
if [ "$scenario" = full ]; then
  scripts/cdk.sh "$SAM_BUILD/Deployer"
  export KEDAFORM_TRUST_POLICY_CODE=$SAM_BUILD/Deployer/TrustPolicyFunction KEDAFORM_KUBERNETES_CODE=$SAM_BUILD/Deployer/DeployerFunction
  export CDK_DISABLE_CLI_TELEMETRY=true JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION=1
  (cd integrations/cdk && npx cdk synth --no-notices --quiet --output "$work/cdk.out" \
    -c clusterName=kedaform-cdk -c "oidcProvider=${issuer#https://}" > /dev/null)
  (cd integrations/cdk/examples/python && ../../node_modules/.bin/cdk synth --no-notices --quiet \
    --app "$VENV-cdk-python/bin/python app.py" --output "$work/cdk-python.out" > /dev/null)
  cdk_out=(--cdk-out "typescript=$work/cdk.out" --cdk-out "python=$work/cdk-python.out")
fi

scripts/cluster.sh exec env PYTHONPATH="$ROOT/scripts" "$VENV/bin/python" -m rehearsal \
  --scenario "$scenario" --sam-build "$SAM_BUILD" --sam "$SAM_VENV/bin/sam" --emulator "$BIN/aws-lambda-rie" \
  --workdir "$work" --cluster-dir "$KEDAFORM_CLUSTER_DIR" --authenticator "$BIN/aws-iam-authenticator" \
  --authenticator-state "$state" --keda-mirror "$KEDAFORM_KEDA_MIRROR" --public-address "$public" \
  --ca-dir "$work/ca" --issuer "$issuer" --moto-port 5000 "${cdk_out[@]}" \
  ${KEDAFORM_REHEARSAL_REPORT:+--report "$KEDAFORM_REHEARSAL_REPORT"}
