#!/usr/bin/env bash
# The main job on a fresh machine, end to end: venv → default model → local Kafka broker → topics →
# sample receipts → the worker → enriched transactions printed → everything stopped.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo"
RECEIPTS="${DEMO_RECEIPTS:-30}"
PORT="${DEMO_KAFKA_PORT:-19092}"
DATA_DIR="$repo/.local/demo-kafka"

bash deploy/local/setup.sh
. deploy/local/env.sh
py=.venv/bin/python

if [[ ! -f models/default/manifest.json ]]; then
  echo "demo: building the default model (tokenizer, small Llama base, LoRA adapter; a few minutes on 2 cores)"
  $py -m training.build_default_model
fi

worker_pid=""
cleanup() {
  [[ -n "$worker_pid" ]] && kill -TERM "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null || true
  bash deploy/local/kafka.sh stop --dir "$DATA_DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT

rm -rf "$DATA_DIR"
bootstrap="$(bash deploy/local/kafka.sh start --port "$PORT" --controller-port "$((PORT + 1))" --dir "$DATA_DIR" | tail -n 1)"
echo "demo: Kafka broker ready at $bootstrap"
export ENRICHER_BOOTSTRAP_SERVERS="$bootstrap" ENRICHER_GROUP_ID="receipt-enricher-demo"

$py -m app.cli create-topics
$py -m app.cli produce-samples --count "$RECEIPTS" --malformed 3
$py -m app.cli worker > .local/demo-worker.log 2>&1 &
worker_pid=$!
echo "demo: worker started (pid $worker_pid, log .local/demo-worker.log)"

$py -m app.cli tail --max "$RECEIPTS" --timeout 300
$py -m app.cli tail --dlq --max 3 --timeout 30
echo "demo: done; stopping the worker and the broker"
