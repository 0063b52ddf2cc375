# Sourced by the project's scripts: the venv and the local moto server.
# Everything started here is stopped by PID on exit, also when a step fails.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${KEDAFORM_VENV:-$ROOT/.venv}
STARTED_PIDS=()

stop_started() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    # A server killed by SIGTERM exits 143 (Java does): that is the stop asked for, not a failure.
    kill "$pid" 2>/dev/null && { wait "$pid" 2>/dev/null || true; }
  done
  STARTED_PIDS=()
}
trap stop_started EXIT
trap 'exit 130' INT TERM

# The SAM CLI and checkov pin their own dependencies, so each gets a venv beside $VENV.
SAM_VENV=$VENV-sam
CHECKOV_VENV=$VENV-checkov

# ensure_venv [REQUIREMENTS...]: the project venv with scripts/requirements.txt, or with the
# files given.
ensure_venv() {
  ensure_venv_at "$VENV" "${@:-$ROOT/scripts/requirements.txt}"
}

# ensure_venv_at DIR REQUIREMENTS...: creates the venv DIR and installs each requirements file
# that changed since it was last installed there.
ensure_venv_at() {
  local venv=$1 requirements stamp
  shift
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || {
    echo "cannot create $venv: install Python 3 with venv (apt-get install python3-venv)" >&2; return 1; }
  for requirements in "$@"; do
    stamp=$venv/.$(basename "$requirements").sha256
    sha256sum "$requirements" | cut -d' ' -f1 | cmp -s - "$stamp" && continue
    echo "installing $requirements into $venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" || return 1
    sha256sum "$requirements" | cut -d' ' -f1 > "$stamp"
  done
}

free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts moto on a free loopback port and exports the standard AWS settings pointing at it.
start_moto() {
  local port log=${TMPDIR:-/tmp}/kedaform-moto.$$.log
  port=$(free_port)
  "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" > "$log" 2>&1 &
  MOTO_PID=$!
  STARTED_PIDS+=("$MOTO_PID")
  export AWS_ENDPOINT_URL=http://127.0.0.1:$port
  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_SESSION_TOKEN=testing
  export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
  export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
  local _
  for _ in $(seq 1 100); do
    if "$VENV/bin/python" -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('$AWS_ENDPOINT_URL/moto-api/').status != 200)" 2>/dev/null; then
      echo "moto server $AWS_ENDPOINT_URL (pid $MOTO_PID)"
      return 0
    fi
    kill -0 "$MOTO_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "moto server did not start; its log:" >&2
  cat "$log" >&2
  return 1
}

# ElasticMQ (scripts/elasticmq/pom.xml) on a free loopback port, as SQS only; its jars are
# fetched once from Maven Central into $KEDAFORM_CACHE/elasticmq. Sets ELASTICMQ_URL.
start_elasticmq() {
  local cache=${KEDAFORM_CACHE:-$HOME/.cache/kedaform}/elasticmq port log
  command -v java > /dev/null && command -v mvn > /dev/null || {
    echo "ElasticMQ needs java and mvn: apt-get install openjdk-17-jre-headless maven" >&2; return 1; }
  if [ ! -f "$cache/stamp" ] || ! cmp -s "$ROOT/scripts/elasticmq/pom.xml" "$cache/stamp"; then
    rm -rf "$cache/lib"
    mvn -q -B -f "$ROOT/scripts/elasticmq/pom.xml" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$cache/lib"
    cp "$ROOT/scripts/elasticmq/pom.xml" "$cache/stamp"
  fi
  port=$(free_port)
  log=${TMPDIR:-/tmp}/kedaform-elasticmq.$$.log
  cat > "$cache/server.conf" <<CONF
include classpath("application.conf")
node-address { protocol = http, host = 127.0.0.1, port = $port, context-path = "" }
rest-sqs { enabled = true, bind-port = $port, bind-hostname = "127.0.0.1", sqs-limits = strict }
rest-stats { enabled = false }
CONF
  java -Dconfig.file="$cache/server.conf" -cp "$cache/lib/*" org.elasticmq.server.Main > "$log" 2>&1 &
  ELASTICMQ_PID=$!
  STARTED_PIDS+=("$ELASTICMQ_PID")
  ELASTICMQ_URL=http://127.0.0.1:$port
  wait_started ElasticMQ "$ELASTICMQ_PID" "$log" "ElasticMQ server .* started" "$ELASTICMQ_URL"
}

# wait_started NAME PID LOG PATTERN URL: returns once LOG has a line matching PATTERN; fails,
# showing LOG, when the process exits first or after 30 s.
wait_started() {
  local name=$1 pid=$2 log=$3 pattern=$4 url=$5 _
  for _ in $(seq 1 150); do
    if grep -q "$pattern" "$log"; then
      echo "$name $url (pid $pid)"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "$name did not start; its log:" >&2
  cat "$log" >&2
  return 1
}

# gofakes3 (scripts/gofakes3, pinned in its go.mod): an S3 that keeps connections alive and
# honours conditional writes, for make bench's CPU rows; built once into
# $KEDAFORM_CACHE/gofakes3. Sets GOFAKES3_URL and GOFAKES3_PID.
start_gofakes3() {
  local cache=${KEDAFORM_CACHE:-$HOME/.cache/kedaform}/gofakes3 source=$ROOT/scripts/gofakes3 port log
  command -v go > /dev/null || { echo "gofakes3 needs Go 1.26: apt-get install golang (or go.dev/dl)" >&2; return 1; }
  if [ ! -x "$cache/gofakes3" ] || ! cat "$source"/go.mod "$source"/go.sum "$source"/main.go | cmp -s - "$cache/stamp"; then
    mkdir -p "$cache"
    (cd "$source" && go build -o "$cache/gofakes3" .)
    cat "$source"/go.mod "$source"/go.sum "$source"/main.go > "$cache/stamp"
  fi
  port=$(free_port)
  log=${TMPDIR:-/tmp}/kedaform-gofakes3.$$.log
  "$cache/gofakes3" "127.0.0.1:$port" > "$log" 2>&1 &
  GOFAKES3_PID=$!
  STARTED_PIDS+=("$GOFAKES3_PID")
  GOFAKES3_URL=http://127.0.0.1:$port
  wait_started gofakes3 "$GOFAKES3_PID" "$log" "^listening on" "$GOFAKES3_URL"
}

# KEDA 2.20.2's release files the tests, the demo and the rehearsal read: the directory
# $KEDAFORM_KEDA_MIRROR when set, else a copy downloaded once into the cache from KEDA's release
# and tag. Each file's SHA-256 is checked either way; exports KEDAFORM_KEDA_MIRROR.
KEDA_VERSION=2.20.2
KEDA_FILES=(
  "keda-$KEDA_VERSION.yaml 9bae123eb64fab8f96c67bbd576bb5819e4794df346c5aaa402a01c68b0557ab https://github.com/kedacore/keda/releases/download/v$KEDA_VERSION/keda-$KEDA_VERSION.yaml"
  "keda.sh_scaledobjects.yaml af35555862a83933b074af14ad439c4b4ceabaf4daa3e9338e9b23e36d308d80 https://raw.githubusercontent.com/kedacore/keda/v$KEDA_VERSION/config/crd/bases/keda.sh_scaledobjects.yaml"
  "keda.sh_triggerauthentications.yaml 275307b4cb19ca8f0f506a879282aa4c67587ac16ec757f494d6585c5c185d65 https://raw.githubusercontent.com/kedacore/keda/v$KEDA_VERSION/config/crd/bases/keda.sh_triggerauthentications.yaml"
)
# KEDA's Helm chart 2.20.2, for the side-by-side bench: the directory $KEDAFORM_KEDA_CHART when
# set, else the chart's package downloaded once into the cache from KEDA's chart repository.
# Either way the files helm renders (Chart.yaml, values.yaml, templates/) must have the digest
# of kedacore/charts at "prepare v2.20.2 release"; exports KEDAFORM_KEDA_CHART.
KEDA_CHART_DIGEST=f376ef736bf3cf7983d96fa01ceae77727c564b7c682e240f58cb149674cfd84
KEDA_CHART_URL=https://kedacore.github.io/charts/keda-$KEDA_VERSION.tgz
ensure_keda_chart() {
  local chart=${KEDAFORM_KEDA_CHART:-} cache=${KEDAFORM_CACHE:-$HOME/.cache/kedaform}/keda-chart-$KEDA_VERSION digest
  if [ -z "$chart" ]; then
    chart=$cache/keda
    if [ ! -f "$chart/Chart.yaml" ]; then
      mkdir -p "$cache"
      curl -fsSL -o "$cache/keda.tgz.part" "$KEDA_CHART_URL" || {
        echo "cannot download $KEDA_CHART_URL: point KEDAFORM_KEDA_CHART at KEDA's chart directory (keda/ of kedacore/charts v2.20.2)" >&2
        return 1; }
      tar -xzf "$cache/keda.tgz.part" -C "$cache" && rm "$cache/keda.tgz.part"
    fi
  fi
  digest=$(cd "$chart" && find Chart.yaml values.yaml templates -type f | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -d' ' -f1)
  [ "$digest" = "$KEDA_CHART_DIGEST" ] || {
    echo "$chart: its Chart.yaml, values.yaml and templates/ digest to $digest, the bench expects KEDA's chart $KEDA_VERSION ($KEDA_CHART_DIGEST)" >&2
    return 1; }
  KEDAFORM_KEDA_CHART=$(cd "$chart" && pwd)
  export KEDAFORM_KEDA_CHART
}

ensure_keda_release() {
  local mirror=${KEDAFORM_KEDA_MIRROR:-${KEDAFORM_CACHE:-$HOME/.cache/kedaform}/keda-$KEDA_VERSION} entry name sha url
  for entry in "${KEDA_FILES[@]}"; do
    read -r name sha url <<< "$entry"
    if [ ! -f "$mirror/$name" ]; then
      [ -z "${KEDAFORM_KEDA_MIRROR:-}" ] || { echo "$mirror has no $name: KEDAFORM_KEDA_MIRROR must hold KEDA $KEDA_VERSION's ${KEDA_FILES[*]%% *}" >&2; return 1; }
      mkdir -p "$mirror"
      curl -fsSL -o "$mirror/$name.part" "$url" || {
        echo "cannot download $url: point KEDAFORM_KEDA_MIRROR at a directory holding $name" >&2; return 1; }
      mv "$mirror/$name.part" "$mirror/$name"
    fi
    echo "$sha  $mirror/$name" | sha256sum -c --quiet - 2>/dev/null || {
      echo "$mirror/$name: its SHA-256 is $(sha256sum "$mirror/$name" | cut -d' ' -f1), the tests expect $sha" >&2; return 1; }
  done
  KEDAFORM_KEDA_MIRROR=$(cd "$mirror" && pwd)
  export KEDAFORM_KEDA_MIRROR
}
