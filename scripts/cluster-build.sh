#!/usr/bin/env bash
# Builds the local control plane from upstream Go modules, pinned by cluster/*/go.mod and go.sum:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, the KEDA operator, metrics
# API server and admission webhooks, AWS's EKS pod identity webhook; for `make rehearse`, AWS's Lambda Runtime Interface Emulator
# and aws-iam-authenticator. Each component is built once into $KEDAFORM_CACHE/cluster/bin and
# rebuilt only when its go.mod, go.sum or flags change.
#   scripts/cluster-build.sh [COMPONENT...]
#   components: etcd k8s kwok keda pod-identity-webhook (the default), rie authenticator
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${KEDAFORM_CACHE:-$HOME/.cache/kedaform}
BIN=$CACHE/cluster/bin
mkdir -p "$BIN"
command -v go > /dev/null || { echo "go is not installed: apt-get install golang (Go 1.26 or later)" >&2; exit 1; }

K8S_VERSION=v1.35.5
KEDA_VERSION=2.20.2
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35 \
-X k8s.io/component-base/version.gitTreeState=clean"
keda_ldflags="-s -w -X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION"

# build COMPONENT LDFLAGS OUTPUT=PACKAGE...
build() {
  local component=$1 ldflags=$2 dir=$ROOT/cluster/$1 stamp want started pair
  shift 2
  stamp=$BIN/.$component.stamp
  want=$(cat "$dir/go.mod" "$dir/go.sum" <(echo "$ldflags $*" "$(go env GOVERSION)") | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  started=$SECONDS
  echo "building $component from its Go module (first time only; docs/src/testing/local-cluster.md has the times)"
  for pair in "$@"; do
    echo "  go build ${pair#*=} -> $BIN/${pair%%=*}"
    (cd "$dir" && CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags "$ldflags" \
      -o "$BIN/${pair%%=*}" "${pair#*=}")
  done
  echo "$want" > "$stamp"
  echo "built $component in $((SECONDS - started)) s"
}

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd k8s kwok keda pod-identity-webhook)
for component in "${components[@]}"; do
  case $component in
    etcd) build etcd "-s -w" etcd=go.etcd.io/etcd/server/v3 ;;
    k8s) build k8s "$k8s_ldflags" \
      kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
      kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
      kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler ;;
    kwok)
      build kwok "-s -w" kwok=sigs.k8s.io/kwok/cmd/kwok
      # kwok's "fast" stages (what kwokctl runs), data files of the same module.
      stages=$(cd "$ROOT/cluster/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
      mkdir -p "$BIN/kwok-stages"
      cp "$stages"/node/fast/node-initialize.yaml "$stages"/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
        "$stages"/pod/fast/pod-ready.yaml "$stages"/pod/fast/pod-complete.yaml "$stages"/pod/fast/pod-delete.yaml \
        "$BIN/kwok-stages/" ;;
    keda) build keda "$keda_ldflags" \
      keda-operator=github.com/kedacore/keda/v2/cmd/operator \
      keda-adapter=github.com/kedacore/keda/v2/cmd/adapter \
      keda-admission-webhooks=github.com/kedacore/keda/v2/cmd/webhooks ;;
    rie) build rie "-s -w" aws-lambda-rie=github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie ;;
    authenticator) build authenticator "-s -w" \
      aws-iam-authenticator=sigs.k8s.io/aws-iam-authenticator/cmd/aws-iam-authenticator ;;
    pod-identity-webhook) build pod-identity-webhook "-s -w" \
      amazon-eks-pod-identity-webhook=github.com/aws/amazon-eks-pod-identity-webhook ;;
    *) echo "unknown component $component (etcd k8s kwok keda pod-identity-webhook rie authenticator)" >&2; exit 2 ;;
  esac
done
