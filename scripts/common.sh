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
