#!/usr/bin/env bash
# The main job on a fresh machine, end to end: venv → default model → local Kafka broker → topics →
# sample receipts → the worker → enriched transactions printed → everything stopped.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
RECEIPTS="${DEMO_RECEIPTS:-30}"
PORT="${DEMO_KAFKA_PORT:-19092}"
DATA_DIR="$repo/.local/demo-kafka"

say() { echo "demo: $*"; }
fail() { echo "demo: $*" >&2; exit 1; }

# Preflight: everything that can stop the run is checked before anything is installed or started.
command -v java >/dev/null || fail "Java is missing: install a JRE 17+ (apt-get install default-jre-headless) and run again"
if [[ ! -f deploy/local/kafka/lib/.pom-sha256 ]] && ! command -v mvn >/dev/null; then
  fail "Maven is missing (needed once, to fetch the Kafka jars): apt-get install maven, and run again"
fi
for p in "$PORT" "$((PORT + 1))"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    fail "port $p is taken (another broker or demo?): stop it, or run DEMO_KAFKA_PORT=<free port> make demo"
  fi
done

venv_ready=0; model_ready=0; jars_ready=0
[[ -f .venv/.lock-hash ]] && venv_ready=1
[[ -f models/default/manifest.json ]] && model_ready=1
[[ -f deploy/local/kafka/lib/.pom-sha256 ]] && jars_ready=1
say "plan: Python venv ($([[ $venv_ready == 1 ]] && echo "ready" || echo "install, ~2 min; torch is a large download")), \
default model ($([[ $model_ready == 1 ]] && echo "ready" || echo "build, ~15 min on 2 cores")), \
Kafka jars ($([[ $jars_ready == 1 ]] && echo "ready" || echo "fetch from Maven Central, ~1 min")), \
then a local broker, $RECEIPTS sample receipts and the worker (~1-2 min)"

say "[1/5] Python venv"
bash deploy/local/setup.sh
. deploy/local/env.sh
py=.venv/bin/python

if [[ $model_ready == 0 ]]; then
  say "[2/5] building the default model (real labelled items + synthetic; progress bars below)"
  $py -m training.build_default_model
else
  say "[2/5] default model: reusing models/default ($($py -c 'import json; print(json.load(open("models/default/manifest.json"))["version"])'))"
fi

say "[3/5] Kafka jars"
bash deploy/local/kafka.sh fetch

worker_pid=""
cleanup() {
  [[ -n "$worker_pid" ]] && kill -TERM "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null || true
  bash deploy/local/kafka.sh stop --dir "$DATA_DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT

rm -rf "$DATA_DIR"
bootstrap="$(bash deploy/local/kafka.sh start --port "$PORT" --controller-port "$((PORT + 1))" --dir "$DATA_DIR" | tail -n 1)"
say "[4/5] Kafka broker ready at $bootstrap"
export ENRICHER_BOOTSTRAP_SERVERS="$bootstrap" ENRICHER_GROUP_ID="receipt-enricher-demo"

$py -m app.cli create-topics
$py -m app.cli produce-samples --count "$RECEIPTS" --malformed 3
$py -m app.cli worker > .local/demo-worker.log 2>&1 &
worker_pid=$!
say "[5/5] worker started (pid $worker_pid, log .local/demo-worker.log); enriched transactions:"

$py -m app.cli tail --max "$RECEIPTS" --timeout 300
$py -m app.cli tail --dlq --max 3 --timeout 30
say "done; stopping the worker and the broker"
