"""The local Apache Kafka broker (deploy/local/kafka.sh) driven from Python for tests and benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "deploy" / "local" / "kafka.sh"


class KafkaBrokerError(RuntimeError):
    """kafka.sh failed or the broker did not do what was asked; the message carries the script's own report."""


def free_port() -> int:
    """A port nothing listens on right now (another process may still take it before we bind)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalKafka:
    """One single-node KRaft broker whose config, data and logs live in ``data_dir``.

    ``start()`` formats a new cluster; ``restart()`` keeps the data and the ports, as a real broker
    restart does, so committed offsets and records survive it.
    """

    def __init__(self, data_dir: Path, port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.env = env or {}  # for kafka.sh: KAFKA_EXTRA_CONFIG, KAFKA_SCRAM_CREDENTIALS (see tests/tls_broker.py)
        self.port = port or free_port()
        self.controller_port = free_port()
        while self.controller_port == self.port:
            self.controller_port = free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> str:
        """Wipe ``data_dir``'s data, format a new cluster and start it; return the bootstrap address."""
        return self._start()

    def restart(self) -> str:
        """Stop the broker and start it again on the same data and ports without reformatting."""
        self.stop()
        return self._start("--no-format")

    def stop(self) -> None:
        self._run("stop", timeout=60)

    def create_topic(self, name: str, partitions: int) -> None:
        """Create a topic and wait until every partition has a leader, so a producer can use it at once."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        future = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name]
        future.result(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            topic = admin.list_topics(name, timeout=10).topics[name]
            if topic.error is None and len(topic.partitions) == partitions and all(
                p.leader >= 0 for p in topic.partitions.values()
            ):
                return
            time.sleep(0.2)
        raise KafkaBrokerError(f"topic {name} was created but its {partitions} partitions got no leader within 30 s")

    def _start(self, *flags: str) -> str:
        ports = ["--port", str(self.port), "--controller-port", str(self.controller_port)]
        stdout = self._run("start", *ports, *flags, timeout=300)
        return stdout.strip().splitlines()[-1]

    def _run(self, command: str, *args: str, timeout: float) -> str:
        result = subprocess.run(
            ["bash", str(SCRIPT), command, *args, "--dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=timeout,
            # The script's readiness check runs on this interpreter, which has confluent_kafka.
            env={**os.environ, **self.env, "PYTHON": sys.executable},
        )
        if result.returncode != 0:
            raise KafkaBrokerError(f"kafka.sh {command} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
        return result.stdout

