#!/usr/bin/env bash
# A local Kubernetes control plane built from upstream, for tests, the demo and the bench.
#   scripts/cluster.sh up      build (first time), start, wait until healthy, print the kubeconfig
#   scripts/cluster.sh down    stop exactly what `up` started (by PID) and remove its network namespace
#   scripts/cluster.sh exec CMD...   run CMD inside the cluster's network namespace with its settings
#
# Everything runs in a network namespace of its own ($KEDAFORM_NETNS, default kedaform) whose
# only interface is its loopback: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kwok (fake nodes: pods are scheduled, get an IP and become Ready), a moto server (the AWS the
# cluster's pods see) and scripts/podrunner.py, which runs the KEDA v2.20.2 binaries as the
# processes of the pods KEDA's own manifest creates. Pod IPs come from 198.18.0.0/16
# (RFC 2544's benchmarking range), which is made local to that namespace, so that the
# aggregation layer can reach the KEDA metrics API server at a pod's Endpoints address (the API
# server refuses 127.0.0.0/8 there) while no packet leaves the namespace.
# Settings make rehearse uses: $KEDAFORM_APISERVER_ARGS (more kube-apiserver flags: its token
# webhook), $KEDAFORM_SERVICE_ACCOUNT_ISSUER (the issuer of service-account tokens, an EKS-style
# OIDC issuer URL), $KEDAFORM_POD_ENV (more NAME=value settings for the pods' processes) and
# KEDAFORM_CLUSTER_MOTO=external (the AWS the pods see listens on 127.0.0.1:5000 but is not
# started here).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${KEDAFORM_CACHE:-$HOME/.cache/kedaform}
BIN=$CACHE/cluster/bin
NETNS=${KEDAFORM_NETNS:-kedaform}
RUN=${KEDAFORM_CLUSTER_DIR:-$CACHE/cluster/run}
VENV=${KEDAFORM_VENV:-$ROOT/.venv}
POD_CIDR=198.18.0.0/16
SERVICE_CIDR=198.19.0.0/16
APISERVER=https://127.0.0.1:6443
# The pod identity webhook's ports: clear of the ports KEDA's pods listen on at their own IPs.
WEBHOOK_PORT=10443
WEBHOOK_METRICS_PORT=10999
# EKS Pod Identity's credentials endpoint (the agent's 169.254.170.23:80 on a node).
POD_IDENTITY_PORT=2703

in_netns() { ip netns exec "$NETNS" "$@"; }

need_root() {
  [ "$(id -u)" = 0 ] || { echo "the local cluster needs root for its network namespace (ip netns add): run as root" >&2; exit 1; }
  command -v ip > /dev/null || { echo "ip is missing: apt-get install iproute2" >&2; exit 1; }
  local tool
  for tool in openssl curl jq; do
    command -v $tool > /dev/null || { echo "$tool is missing: apt-get install $tool" >&2; exit 1; }
  done
}

# cert NAME SUBJECT [SAN]: a key and a certificate signed by the cluster CA (or self-signed CA).
cert() {
  local name=$1 subject=$2 san=${3:-} ca=${4:-ca}
  openssl genrsa -out "$RUN/pki/$name.key" 2048 2> /dev/null
  openssl req -new -key "$RUN/pki/$name.key" -subj "$subject" -out "$RUN/pki/$name.csr" 2> /dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=serverAuth,clientAuth"
    [ -z "$san" ] || echo "subjectAltName=$san"
  } > "$RUN/pki/$name.ext"
  openssl x509 -req -in "$RUN/pki/$name.csr" -CA "$RUN/pki/$ca.crt" -CAkey "$RUN/pki/$ca.key" \
    -CAcreateserial -days 365 -extfile "$RUN/pki/$name.ext" -out "$RUN/pki/$name.crt" 2> /dev/null
}

ca() {
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$RUN/pki/$1.key" -out "$RUN/pki/$1.crt" \
    -days 365 -subj "/CN=$2" 2> /dev/null
}

pki() {
  mkdir -p "$RUN/pki"
  ca ca kedaform-local-ca
  ca front-proxy-ca kedaform-local-front-proxy-ca
  cert apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:198.19.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
  cert admin "/O=system:masters/CN=kedaform-admin"
  cert pod-identity-webhook "/CN=pod-identity-webhook" "IP:127.0.0.1"
  cert front-proxy-client "/CN=front-proxy-client" "" front-proxy-ca
  openssl genrsa -out "$RUN/pki/sa.key" 2048 2> /dev/null
  openssl rsa -in "$RUN/pki/sa.key" -pubout -out "$RUN/pki/sa.pub" 2> /dev/null
  cat > "$RUN/kubeconfig" << EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: $APISERVER, certificate-authority: $RUN/pki/ca.crt}
users:
- name: admin
  user: {client-certificate: $RUN/pki/admin.crt, client-key: $RUN/pki/admin.key}
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
EOF
}

# start NAME CMD...: runs CMD in the namespace, logs to $RUN/NAME.log, records its PID.
start() {
  local name=$1
  shift
  in_netns setsid "$@" > "$RUN/$name.log" 2>&1 < /dev/null &
  echo "$! $name" >> "$RUN/pids"
}


# api METHOD PATH [curl args]: the API server as the admin, from inside the namespace.
api() {
  local method=$1 path=$2
  shift 2
  in_netns curl -sf --cacert "$RUN/pki/ca.crt" --cert "$RUN/pki/admin.crt" --key "$RUN/pki/admin.key" \
    -X "$method" "$@" "$APISERVER$path"
}

# until_ok WHAT SECONDS LOG FUNCTION...: retries a shell function until it succeeds.
until_ok() {
  local what=$1 seconds=$2 log=$3 i
  shift 3
  for ((i = 0; i < seconds * 5; i++)); do
    "$@" > /dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "$what did not become ready in ${seconds}s; the end of $log:" >&2
  tail -20 "$log" >&2
  exit 1
}

apiserver_ready() { api GET /readyz; }
webhook_ready() { in_netns curl -sf --cacert "$RUN/pki/ca.crt" "https://127.0.0.1:$WEBHOOK_PORT/healthz"; }
node_ready() { api GET /api/v1/nodes/kwok-node-0 | jq -e '.status.conditions[] | select(.type == "Ready" and .status == "True")'; }
default_account() { api GET /api/v1/namespaces/default/serviceaccounts/default; }
moto_ready() { in_netns curl -sf http://127.0.0.1:5000/moto-api/; }

# The images of KEDA's release manifests (keda-2.20.2.yaml, and keda-2.19.0.yaml of the upgrade
# test) and what runs for them: the pod's own args plus what a container would not need (its
# own bind address, the kubeconfig a mounted service-account token would replace, the
# operator's address that DNS would give).
keda_images() {
  local version=$1 suffix=$2
  cat << EOF
  "ghcr.io/kedacore/keda:$version": {"binary": "$BIN/keda-operator$suffix", "args": [
    "--metrics-bind-address={pod_ip}:8080", "--health-probe-bind-address={pod_ip}:8081",
    "--metrics-service-bind-address={pod_ip}:9666", "--cert-dir={mount:/certs}"],
    "env": {"KEDA_CLUSTER_OBJECT_NAMESPACE": "{namespace}"}},
  "ghcr.io/kedacore/keda-metrics-apiserver:$version": {"binary": "$BIN/keda-adapter$suffix", "args": [
    "--bind-address={pod_ip}", "--port=18080", "--lister-kubeconfig={kubeconfig}",
    "--authentication-kubeconfig={kubeconfig}", "--authorization-kubeconfig={kubeconfig}",
    "--metrics-service-address={service:keda-operator.keda:9666}",
    "--metrics-service-grpc-authority=keda-operator.keda.svc.cluster.local"],
    "env": {"KEDA_CLUSTER_OBJECT_NAMESPACE": "{namespace}"}},
  "ghcr.io/kedacore/keda-admission-webhooks:$version": {"binary": "$BIN/keda-admission-webhooks$suffix", "args": [
    "--metrics-bind-address={pod_ip}:8080", "--health-probe-bind-address={pod_ip}:8081",
    "--cert-dir={mount:/certs}"],
    "env": {"KEDA_CLUSTER_OBJECT_NAMESPACE": "{namespace}"}}
EOF
}

images() {
  echo "{"
  keda_images 2.20.2 ""
  echo ","
  keda_images 2.19.0 -2.19.0
  echo "}"
}

# A node kwok keeps Ready; room for KEDA and a demo at MaxReplicas 50.
node() {
  cat << 'EOF'
{"apiVersion": "v1", "kind": "Node",
 "metadata": {"name": "kwok-node-0", "annotations": {"kwok.x-k8s.io/node": "fake"},
   "labels": {"type": "kwok", "kubernetes.io/hostname": "kwok-node-0", "kubernetes.io/os": "linux"}},
 "spec": {"podCIDR": "198.18.0.0/16"},
 "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250"},
   "capacity": {"cpu": "64", "memory": "256Gi", "pods": "250"}}}
EOF
}

# The webhook's registration, as EKS's (upstream deploy/mutatingwebhook.yaml), reached by URL
# instead of a service, failing closed: a pod created without its AWS settings would fail later,
# far from the cause.
pod_identity_webhook() {
  jq -n --arg url "https://127.0.0.1:$WEBHOOK_PORT/mutate" --arg ca "$(base64 -w0 "$RUN/pki/ca.crt")" '{
    apiVersion: "admissionregistration.k8s.io/v1", kind: "MutatingWebhookConfiguration",
    metadata: {name: "pod-identity-webhook"},
    webhooks: [{name: "pod-identity-webhook.amazonaws.com", failurePolicy: "Fail",
      clientConfig: {url: $url, caBundle: $ca},
      objectSelector: {matchExpressions: [{key: "eks.amazonaws.com/skip-pod-identity-webhook", operator: "DoesNotExist"}]},
      rules: [{operations: ["CREATE"], apiGroups: [""], apiVersions: ["v1"], resources: ["pods"]}],
      sideEffects: "None", admissionReviewVersions: ["v1beta1"]}]}'
}

up() {
  need_root
  if [ -f "$RUN/pids" ]; then
    echo "a cluster is already running ($RUN/pids): scripts/cluster.sh down first" >&2
    exit 1
  fi
  "$ROOT/scripts/cluster-build.sh"
  # moto and the pod runner's Python come from the project's venv, made here on a fresh checkout.
  bash -c 'source "$1/scripts/common.sh" && ensure_venv' _ "$ROOT"
  local started=$SECONDS
  rm -rf "$RUN"
  mkdir -p "$RUN"
  ip netns add "$NETNS"
  echo "$NETNS" > "$RUN/netns"
  : > "$RUN/pids"
  in_netns ip link set lo up
  # The pod range is local to the namespace: any pod IP reaches whatever listens on it there.
  in_netns ip route add local "$POD_CIDR" dev lo
  pki
  # Every request's metadata (who, what, user agent): `make bench` counts kedaform's from it.
  printf 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n' > "$RUN/audit-policy.yaml"
  # $KEDAFORM_EXTRA_IMAGES: more images for the pod runner (make demo adds the consumer's).
  if [ -n "${KEDAFORM_EXTRA_IMAGES:-}" ]; then
    jq -s '.[0] + .[1]' <(images) "$KEDAFORM_EXTRA_IMAGES" > "$RUN/images.json"
  else
    images > "$RUN/images.json"
  fi
  cat > "$RUN/env" << EOF
export KUBECONFIG=$RUN/kubeconfig
export AWS_ENDPOINT_URL=http://127.0.0.1:5000
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
export KEDAFORM_CLUSTER_DIR=$RUN KEDAFORM_NETNS=$NETNS
export KEDAFORM_KEDA_PREVIOUS=$BIN/keda-2.19.0.yaml
EOF

  echo "starting etcd, moto, kube-apiserver, kube-controller-manager, kube-scheduler, kwok and the pod runner in network namespace $NETNS"
  start etcd "$BIN/etcd" --data-dir "$RUN/etcd" --listen-client-urls http://127.0.0.1:2379 \
    --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
    --initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster default=http://127.0.0.1:2380 \
    --unsafe-no-fsync
  [ "${KEDAFORM_CLUSTER_MOTO:-}" = external ] || start moto "$VENV/bin/moto_server" -H 127.0.0.1 -p 5000
  start kube-apiserver "$BIN/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
    --bind-address 127.0.0.1 --secure-port 6443 --advertise-address 198.19.0.1 \
    --endpoint-reconciler-type none --service-cluster-ip-range "$SERVICE_CIDR" \
    --tls-cert-file "$RUN/pki/apiserver.crt" --tls-private-key-file "$RUN/pki/apiserver.key" \
    --client-ca-file "$RUN/pki/ca.crt" --authorization-mode RBAC \
    --service-account-issuer "${KEDAFORM_SERVICE_ACCOUNT_ISSUER:-https://kubernetes.default.svc}" \
    --service-account-key-file "$RUN/pki/sa.pub" --service-account-signing-key-file "$RUN/pki/sa.key" \
    --enable-aggregator-routing=true \
    --requestheader-client-ca-file "$RUN/pki/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client --requestheader-username-headers X-Remote-User \
    --requestheader-group-headers X-Remote-Group --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$RUN/pki/front-proxy-client.crt" \
    --proxy-client-key-file "$RUN/pki/front-proxy-client.key" \
    --audit-policy-file "$RUN/audit-policy.yaml" --audit-log-path "$RUN/audit.log" --audit-log-maxsize 200 \
    ${KEDAFORM_APISERVER_ARGS:-}
  until_ok kube-apiserver 120 "$RUN/kube-apiserver.log" apiserver_ready
  # AWS's EKS pod identity webhook, as EKS runs it: a pod whose service account carries
  # eks.amazonaws.com/role-arn gets AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE and the projected
  # service-account token for sts.amazonaws.com, which the pod runner then mounts (IRSA). A pod
  # whose service account has a Pod Identity association (pod-identity/associations.json) gets
  # the container-credentials settings instead, pointing at scripts/podidentity.py.
  mkdir -p "$RUN/pod-identity"
  echo '{"identities": []}' > "$RUN/pod-identity/associations.json"
  start pod-identity-webhook "$BIN/amazon-eks-pod-identity-webhook" --in-cluster=false \
    --kubeconfig "$RUN/kubeconfig" --tls-cert "$RUN/pki/pod-identity-webhook.crt" \
    --tls-key "$RUN/pki/pod-identity-webhook.key" --port "$WEBHOOK_PORT" --metrics-port "$WEBHOOK_METRICS_PORT" \
    --aws-default-region us-east-1 --sts-regional-endpoint=true \
    --watch-container-credentials-config "$RUN/pod-identity/associations.json" \
    --container-credentials-full-uri "http://127.0.0.1:$POD_IDENTITY_PORT/v1/credentials"
  until_ok pod-identity-webhook 30 "$RUN/pod-identity-webhook.log" webhook_ready
  start pod-identity env AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true \
    "$VENV/bin/python" "$ROOT/scripts/podidentity.py" --run "$RUN" --port "$POD_IDENTITY_PORT" \
    --cluster local
  pod_identity_webhook | api POST /apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations \
    -H 'Content-Type: application/json' --data-binary @- > /dev/null
  start kube-controller-manager "$BIN/kube-controller-manager" --kubeconfig "$RUN/kubeconfig" \
    --authentication-kubeconfig "$RUN/kubeconfig" --authorization-kubeconfig "$RUN/kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 10257 \
    --service-account-private-key-file "$RUN/pki/sa.key" --root-ca-file "$RUN/pki/ca.crt" \
    --controllers '*'
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$RUN/kubeconfig" \
    --authentication-kubeconfig "$RUN/kubeconfig" --authorization-kubeconfig "$RUN/kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 10259
  local stages
  stages=$(printf ',%s' "$BIN"/kwok-stages/*.yaml)
  start kwok "$BIN/kwok" --kubeconfig "$RUN/kubeconfig" --manage-all-nodes=true \
    --config "${stages#,}" --cidr 198.18.0.1/16 --node-ip 198.19.0.2 --node-lease-duration-seconds 40
  # shellcheck disable=SC2086 # KEDAFORM_POD_ENV is a list of NAME=value words
  start podrunner env AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1 \
    AWS_DEFAULT_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true ${KEDAFORM_POD_ENV:-} \
    "$VENV/bin/python" "$ROOT/scripts/podrunner.py" --run "$RUN" --images "$RUN/images.json"
  node | api POST /api/v1/nodes -H 'Content-Type: application/json' --data-binary @- > /dev/null
  until_ok "node kwok-node-0" 60 "$RUN/kwok.log" node_ready
  until_ok "the default service account" 60 "$RUN/kube-controller-manager.log" default_account
  [ "${KEDAFORM_CLUSTER_MOTO:-}" = external ] || until_ok moto 30 "$RUN/moto.log" moto_ready
  echo "local cluster up in $((SECONDS - started)) s: Kubernetes $("$BIN/kube-apiserver" --version | cut -d' ' -f2), network namespace $NETNS"
  echo "kubeconfig: $RUN/kubeconfig"
  echo "reach it from the namespace: scripts/cluster.sh exec COMMAND (ip netns exec $NETNS with KUBECONFIG and moto's AWS settings)"
}

down() {
  [ -f "$RUN/pids" ] || { echo "no local cluster is running ($RUN/pids is absent)"; return 0; }
  local pid name netns
  netns=$(cat "$RUN/netns" 2> /dev/null || echo "$NETNS")
  # Newest first: the pod runner stops its processes before the API server goes.
  tac "$RUN/pids" | while read -r pid name; do
    kill -TERM "$pid" 2> /dev/null || continue
    for _ in $(seq 1 100); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
    if kill -KILL "$pid" 2> /dev/null; then echo "killed $name (pid $pid) after 10 s"; fi
  done
  # Whatever is left in the namespace was started in it: the pods' processes of a killed runner.
  for pid in $(ip netns pids "$netns" 2> /dev/null); do kill -KILL "$pid" 2> /dev/null || true; done
  ip netns delete "$netns" 2> /dev/null || true
  rm -f "$RUN/pids"
  echo "local cluster stopped; logs stay in $RUN"
}

run_in() {
  [ -f "$RUN/env" ] || { echo "no local cluster: scripts/cluster.sh up (make cluster)" >&2; exit 1; }
  # shellcheck disable=SC1091
  source "$RUN/env"
  exec ip netns exec "$KEDAFORM_NETNS" "$@"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  exec) shift; run_in "$@" ;;
  *) echo "usage: scripts/cluster.sh up|down|exec CMD..." >&2; exit 2 ;;
esac
