#!/usr/bin/env bash
# Builds the local control plane from upstream Go modules, pinned by cluster/*/go.mod and go.sum:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, the KEDA operator, metrics
# API server and admission webhooks, AWS's EKS pod identity webhook; for `make rehearse`, AWS's Lambda Runtime Interface Emulator
# and aws-iam-authenticator. Each component is built once into $KEDAFORM_CACHE/cluster/bin and
# rebuilt only when its go.mod, go.sum or flags change.
#   scripts/cluster-build.sh [COMPONENT...]
#   components: etcd k8s kwok keda pod-identity-webhook kustomize keda-previous (the default:
#   the last two for the upgrade test), rie authenticator, helm (the side-by-side bench)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${KEDAFORM_CACHE:-$HOME/.cache/kedaform}
BIN=$CACHE/cluster/bin
mkdir -p "$BIN"
command -v go > /dev/null || { echo "go is not installed: apt-get install golang (Go 1.26 or later)" >&2; exit 1; }

K8S_VERSION=v1.35.5
KEDA_VERSION=2.20.2
KEDA_PREVIOUS_VERSION=2.19.0
k8s_ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION \
-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=35 \
-X k8s.io/component-base/version.gitTreeState=clean"
keda_ldflags="-s -w -X github.com/kedacore/keda/v2/version.Version=$KEDA_VERSION"
keda_previous_ldflags="-s -w -X github.com/kedacore/keda/v2/version.Version=$KEDA_PREVIOUS_VERSION"

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

# KEDA's release manifest of VERSION, rendered from config/ of the KEDA module in DIR as KEDA's
# own `make release` renders it (images set, version label, kustomize build config/default).
render_keda() {
  local version=$1 dir=$2 out=$3 work
  work=$(mktemp -d)
  cp -r "$dir/config" "$work/" && chmod -R u+w "$work"
  (cd "$work/config/manager" && "$BIN/kustomize" edit set image "ghcr.io/kedacore/keda=ghcr.io/kedacore/keda:$version")
  (cd "$work/config/metrics-server" && "$BIN/kustomize" edit set image \
    "ghcr.io/kedacore/keda-metrics-apiserver=ghcr.io/kedacore/keda-metrics-apiserver:$version")
  (cd "$work/config/webhooks" && "$BIN/kustomize" edit set image \
    "ghcr.io/kedacore/keda-admission-webhooks=ghcr.io/kedacore/keda-admission-webhooks:$version")
  sed -i -e "s@version:[ ].*@version: $version@g" "$work/config/default/kustomize-config/metadataLabelTransformer.yaml"
  "$BIN/kustomize" build "$work/config/default" > "$out.tmp"
  mv "$out.tmp" "$out"
  rm -rf "$work"
}

# The previous release's manifest, for the upgrade test. The recipe is first checked on the
# pinned release: it must reproduce KEDA's published keda-$KEDA_VERSION.yaml byte for byte.
previous_manifest() {
  local out=$BIN/keda-$KEDA_PREVIOUS_VERSION.yaml mirror=${KEDAFORM_KEDA_MIRROR:-$ROOT/../shared/fixtures/keda} dir
  [ -s "$out" ] && [ "$out" -nt "$ROOT/cluster/keda-previous/go.sum" ] && return 0
  if [ -f "$mirror/keda-$KEDA_VERSION.yaml" ]; then
    dir=$(cd "$ROOT/cluster/keda" && go list -m -f '{{.Dir}}' github.com/kedacore/keda/v2)
    render_keda "$KEDA_VERSION" "$dir" "$BIN/keda-$KEDA_VERSION.rendered.yaml"
    cmp -s "$BIN/keda-$KEDA_VERSION.rendered.yaml" "$mirror/keda-$KEDA_VERSION.yaml" || {
      echo "rendering KEDA $KEDA_VERSION from its module does not reproduce its release manifest" \
        "($mirror/keda-$KEDA_VERSION.yaml): the recipe in $0 no longer matches KEDA's make release" >&2
      exit 1
    }
    rm -f "$BIN/keda-$KEDA_VERSION.rendered.yaml"
  fi
  dir=$(cd "$ROOT/cluster/keda-previous" && go list -m -f '{{.Dir}}' github.com/kedacore/keda/v2)
  render_keda "$KEDA_PREVIOUS_VERSION" "$dir" "$out"
  echo "rendered $out"
}

components=("$@")
[ ${#components[@]} -gt 0 ] || components=(etcd k8s kwok keda pod-identity-webhook kustomize keda-previous)
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
    keda-previous) build keda-previous "$keda_previous_ldflags" \
      keda-operator-$KEDA_PREVIOUS_VERSION=github.com/kedacore/keda/v2/cmd/operator \
      keda-adapter-$KEDA_PREVIOUS_VERSION=github.com/kedacore/keda/v2/cmd/adapter \
      keda-admission-webhooks-$KEDA_PREVIOUS_VERSION=github.com/kedacore/keda/v2/cmd/webhooks
      build kustomize "-s -w" kustomize=sigs.k8s.io/kustomize/kustomize/v5
      previous_manifest ;;
    kustomize) build kustomize "-s -w" kustomize=sigs.k8s.io/kustomize/kustomize/v5 ;;
    helm) build helm "-s -w -X helm.sh/helm/v4/internal/version.version=v4.3.2" helm=helm.sh/helm/v4/cmd/helm ;;
    rie) build rie "-s -w" aws-lambda-rie=github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie ;;
    authenticator) build authenticator "-s -w" \
      aws-iam-authenticator=sigs.k8s.io/aws-iam-authenticator/cmd/aws-iam-authenticator ;;
    pod-identity-webhook) build pod-identity-webhook "-s -w" \
      amazon-eks-pod-identity-webhook=github.com/aws/amazon-eks-pod-identity-webhook ;;
    *) echo "unknown component $component (etcd k8s kwok keda pod-identity-webhook rie authenticator keda-previous kustomize helm)" >&2
      exit 2 ;;
  esac
done
