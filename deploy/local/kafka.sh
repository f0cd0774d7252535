#!/usr/bin/env bash
# A real single-node Apache Kafka (KRaft) broker on 127.0.0.1, from Maven Central's jars.
#   kafka.sh fetch                     copy the jars into deploy/local/kafka/lib (skipped while lib matches pom.xml)
#   kafka.sh start [--port 9092] [--controller-port 9093] [--dir DIR] [--no-format]
#                                      start in the background and wait until it answers a metadata request;
#                                      prints the bootstrap address as the last line of stdout.
#                                      Without --no-format the data in DIR is wiped and a new cluster formatted;
#                                      with it the broker restarts on the data already there.
#   kafka.sh stop [--dir DIR]          SIGTERM, then SIGKILL after 30 s
#   kafka.sh status [--dir DIR]        exit 0 and "running ..." while up, exit 3 and "stopped" otherwise
# DIR defaults to <repo>/.local/kafka and holds server.properties, data/, broker.log, stdout.log, kafka.pid.
# Environment: KAFKA_EXTRA_CONFIG=<file> is appended to server.properties (extra listeners, TLS, SASL);
# KAFKA_SCRAM_CREDENTIALS=<file>: each line is a kafka-storage --add-scram credential written at format time
# (salted form 'SCRAM-SHA-512=[name=..,iterations=..,salt="..",saltedpassword=".."]' keeps passwords off argv);
# KAFKA_READY_TIMEOUT seconds to wait for readiness (90); PYTHON with confluent_kafka for the readiness check.
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
pidfile="$dir/kafka.pid"
cfg="$dir/server.properties"

fetch() {
  local stamp="$lib/.pom-sha256" want
  want="$(sha256sum "$here/kafka/pom.xml" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then return 0; fi
  command -v mvn >/dev/null || { echo "kafka.sh: Maven is required to fetch the jars (apt-get install maven)" >&2; exit 1; }
  rm -rf "$lib"
  echo "kafka.sh: fetching Apache Kafka jars with Maven into $lib" >&2
  mvn -q -B -f "$here/kafka/pom.xml" dependency:copy-dependencies -DoutputDirectory="$lib" >&2
  # Written last, so an interrupted fetch is redone rather than leaving a partial lib that looks complete.
  echo "$want" > "$stamp"
}

# kill -0 also succeeds on a zombie, which the broker is for a moment when this shell started it.
alive() { local state; state="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" && [[ -n $state && $state != Z ]]; }

# The pid file can outlive the broker and its pid be reused: only a kafka.Kafka process counts.
is_broker() { alive "$1" && grep -qa 'kafka\.Kafka' "/proc/$1/cmdline" 2>/dev/null; }

broker_pid() {
  [[ -f "$pidfile" ]] || return 1
  local pid; pid="$(cat "$pidfile")"
  is_broker "$pid" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

python_bin() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"
  elif [[ -x "$repo/.venv/bin/python" ]]; then echo "$repo/.venv/bin/python"
  else echo python3; fi
}

# One metadata request that must list this broker; TopicCommand (a JVM start per try) if Python lacks the client.
answers_metadata() {
  local py; py="$(python_bin)"
  if "$py" -c 'import confluent_kafka' 2>/dev/null; then
    "$py" - "127.0.0.1:$port" <<'PY' 2>/dev/null
import sys
from confluent_kafka.admin import AdminClient
metadata = AdminClient({"bootstrap.servers": sys.argv[1]}).list_topics(timeout=5)
sys.exit(0 if metadata.brokers else 1)
PY
  else
    timeout 30 java -cp "$lib/*" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" --list \
      >/dev/null 2>&1
  fi
}

write_config() {
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
  if [[ -n "${KAFKA_EXTRA_CONFIG:-}" ]]; then
    # Later keys win in a properties file, so the extra file can also override the lines above.
    printf '\n# appended from %s\n' "$KAFKA_EXTRA_CONFIG" >> "$cfg"
    cat "$KAFKA_EXTRA_CONFIG" >> "$cfg"
  fi
}

start() {
  command -v java >/dev/null || { echo "kafka.sh: Java 17+ is required (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
  fetch
  if pid="$(broker_pid)"; then echo "kafka.sh: a broker is already running in $dir (pid $pid); stop it first" >&2; exit 1; fi
  for p in "$port" "$controller_port"; do
    # Otherwise the readiness check could be answered by whatever already listens there.
    if port_open "$p"; then echo "kafka.sh: port $p on 127.0.0.1 is already in use; pick another with --port/--controller-port" >&2; exit 1; fi
  done
  mkdir -p "$dir"
  write_config
  if [[ $format == 1 ]]; then
    rm -rf "$dir/data" "$dir/broker.log"
    local cluster_id
    cluster_id="$(java -cp "$lib/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    local scram=()
    if [[ -n "${KAFKA_SCRAM_CREDENTIALS:-}" ]]; then
      while IFS= read -r line; do [[ -n $line ]] && scram+=(--add-scram "$line"); done < "$KAFKA_SCRAM_CREDENTIALS"
    fi
    java -cp "$lib/*" kafka.tools.StorageTool format -t "$cluster_id" -c "$cfg" "${scram[@]}" >"$dir/format.log" 2>&1 \
      || { echo "kafka.sh: formatting $dir/data failed:" >&2; cat "$dir/format.log" >&2; exit 1; }
  elif [[ ! -f "$dir/data/meta.properties" ]]; then
    echo "kafka.sh: --no-format but $dir/data holds no formatted cluster; start once without --no-format" >&2; exit 1
  fi
  nohup java -Xmx768m -Xms256m -Djava.awt.headless=true \
    -Dkafka.log.dir="$dir" -Dlog4j2.configurationFile="$here/kafka/log4j2.properties" \
    -cp "$lib/*" kafka.Kafka "$cfg" </dev/null >"$dir/stdout.log" 2>&1 &
  local pid=$!
  echo "$pid" > "$pidfile"
  local deadline=$((SECONDS + ${KAFKA_READY_TIMEOUT:-90}))
  while (( SECONDS < deadline )); do
    if ! alive "$pid"; then
      rm -f "$pidfile"
      echo "kafka.sh: the broker exited during start-up; last lines of $dir/broker.log and stdout.log:" >&2
      tail -n 20 "$dir/broker.log" "$dir/stdout.log" >&2 2>/dev/null || true
      exit 1
    fi
    if port_open "$port" && answers_metadata; then
      echo "127.0.0.1:$port"
      return 0
    fi
    sleep 0.5
  done
  echo "kafka.sh: the broker did not answer within ${KAFKA_READY_TIMEOUT:-90} s; stopping it. Last lines of $dir/broker.log:" >&2
  tail -n 20 "$dir/broker.log" >&2 2>/dev/null || true
  stop
  exit 1
}

stop() {
  local pid
  if ! pid="$(broker_pid)"; then rm -f "$pidfile"; return 0; fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    alive "$pid" || { rm -f "$pidfile"; return 0; }
    sleep 0.5
  done
  echo "kafka.sh: the broker (pid $pid) ignored SIGTERM for 30 s; killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
  while alive "$pid"; do sleep 0.1; done
  rm -f "$pidfile"
}

status() {
  local pid
  if pid="$(broker_pid)"; then
    echo "running pid $pid in $dir: $(grep -m1 '^advertised.listeners=' "$cfg" | cut -d= -f2-)"
  else
    echo "stopped ($dir)"; exit 3
  fi
}

case "$cmd" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) sed -n '2,15p' "${BASH_SOURCE[0]}" >&2; exit 2 ;;
esac
