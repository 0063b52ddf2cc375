#!/usr/bin/env bash
# `make rehearse`: `sam deploy` of infra/template.yaml rehearsed on this machine (README:
# Rehearsal). What `sam build` made is packaged into the rehearsal's moto and driven through
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
KEDA_VERSION=2.20.2
# sha256 of https://github.com/kedacore/keda/releases/download/v2.20.2/keda-2.20.2.yaml
KEDA_SHA256=9bae123eb64fab8f96c67bbd576bb5819e4794df346c5aaa402a01c68b0557ab

ensure_venv
ensure_venv_at "$SAM_VENV" "$ROOT/scripts/requirements-sam.txt"
export SAM_CLI_TELEMETRY=0
SAM_BUILD=${KEDAFORM_SAM_BUILD:-}
if [ -z "$SAM_BUILD" ]; then
  SAM_BUILD=${CARGO_TARGET_DIR:-$ROOT/target}/sam-build
  PATH=$SAM_VENV/bin:$PATH "$SAM_VENV/bin/sam" build --build-dir "$SAM_BUILD" > /dev/null
fi
scripts/cluster-build.sh etcd k8s kwok keda rie authenticator

# KEDA's release manifest, which the kube Lambda downloads from GitHub releases: from the mirror
# directory $KEDAFORM_KEDA_MIRROR, else downloaded once, its digest checked either way.
mirror=${KEDAFORM_KEDA_MIRROR:-$CACHE/keda-mirror}
manifest=$mirror/keda-$KEDA_VERSION.yaml
if [ ! -f "$manifest" ]; then
  mkdir -p "$mirror"
  curl -fsSL -o "$manifest.part" "https://github.com/kedacore/keda/releases/download/v$KEDA_VERSION/keda-$KEDA_VERSION.yaml" || {
    echo "cannot download KEDA's manifest; point KEDAFORM_KEDA_MIRROR at a directory holding keda-$KEDA_VERSION.yaml" >&2; exit 1; }
  mv "$manifest.part" "$manifest"
fi
echo "$KEDA_SHA256  $manifest" | sha256sum -c --quiet - || { echo "$manifest is not KEDA $KEDA_VERSION's release manifest" >&2; exit 1; }

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

scripts/cluster.sh exec env PYTHONPATH="$ROOT/scripts" "$VENV/bin/python" -m rehearsal \
  --scenario "$scenario" --sam-build "$SAM_BUILD" --sam "$SAM_VENV/bin/sam" --emulator "$BIN/aws-lambda-rie" \
  --workdir "$work" --cluster-dir "$KEDAFORM_CLUSTER_DIR" --authenticator "$BIN/aws-iam-authenticator" \
  --authenticator-state "$state" --keda-mirror "$mirror" --public-address "$public" \
  --ca-dir "$work/ca" --issuer "$issuer" --moto-port 5000 \
  ${KEDAFORM_REHEARSAL_REPORT:+--report "$KEDAFORM_REHEARSAL_REPORT"}
