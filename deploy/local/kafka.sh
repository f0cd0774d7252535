#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft) broker on 127.0.0.1, from Maven Central's jars.
#   kafka.sh fetch                                   copy the jars into deploy/local/kafka/lib (idempotent)
#   kafka.sh start [--port 9092] [--controller-port 9093] [--dir DIR] [--no-format]
#                                                    start in the background; prints the bootstrap address last
#   kafka.sh stop [--dir DIR]                        SIGTERM, then SIGKILL after 30 s
#   kafka.sh status [--dir DIR]
# KAFKA_EXTRA_CONFIG=<file> appends broker settings (extra listeners, TLS, SASL) to server.properties.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
lib="$here/kafka/lib"
cmd="${1:-}"; shift || true
port=9092; controller_port=9093; dir="$repo/.local/kafka"; format=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --controller-port) controller_port="$2"; shift 2 ;;
    --dir) dir="$2"; shift 2 ;;
    --no-format) format=0; shift ;;
    *) echo "kafka.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

fetch() {
  local stamp="$lib/.pom-sha256" want
  want="$(sha256sum "$here/kafka/pom.xml" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
  rm -rf "$lib"
  echo "kafka.sh: fetching Apache Kafka jars with Maven" >&2
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$lib" >&2
  echo "$want" > "$stamp"
}

pid_alive() { [[ -f "$dir/kafka.pid" ]] && kill -0 "$(cat "$dir/kafka.pid")" 2>/dev/null; }

start() {
  command -v java >/dev/null || { echo "kafka.sh: java 17+ is required (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
  fetch
  if pid_alive; then echo "kafka.sh: already running (pid $(cat "$dir/kafka.pid")) in $dir" >&2; exit 1; fi
  mkdir -p "$dir"
  local cfg="$dir/server.properties"
  if [[ $format == 1 || ! -f "$cfg" ]]; then
    rm -rf "$dir/data"
    cat > "$cfg" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$dir/data
num.partitions=3
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
    if [[ -n "${KAFKA_EXTRA_CONFIG:-}" ]]; then cat "$KAFKA_EXTRA_CONFIG" >> "$cfg"; fi
    local cluster_id
    cluster_id="$(java -cp "$lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    java -cp "$lib/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$cfg" >"$dir/format.log" 2>&1
  fi
  nohup java -Xmx768m -Xms256m -Dkafka.log.dir="$dir" -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
    -cp "$lib/*" kafka.Kafka "$cfg" >"$dir/stdout.log" 2>&1 &
  echo $! > "$dir/kafka.pid"
  # Ready when the listener accepts and the broker answers (the log line alone can precede the listener).
  for _ in $(seq 1 180); do
    if ! pid_alive; then echo "kafka.sh: broker exited; see $dir/stdout.log and $dir/broker.log" >&2; exit 1; fi
    if grep -q "Kafka Server started" "$dir/broker.log" 2>/dev/null && (exec 3<>/dev/tcp/127.0.0.1/"$port") 2>/dev/null; then
      echo "127.0.0.1:$port"
      return 0
    fi
    sleep 0.5
  done
  echo "kafka.sh: broker not ready after 90 s; see $dir/broker.log" >&2
  exit 1
}

stop() {
  pid_alive || { rm -f "$dir/kafka.pid"; return 0; }
  local pid; pid="$(cat "$dir/kafka.pid")"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$dir/kafka.pid"; return 0; }; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/kafka.pid"
}

case "$cmd" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) if pid_alive; then echo "running pid $(cat "$dir/kafka.pid")"; else echo "stopped"; exit 1; fi ;;
  *) sed -n '2,9p' "${BASH_SOURCE[0]}"; exit 2 ;;
esac
