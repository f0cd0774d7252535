"""The local Apache Kafka broker (deploy/local/kafka.sh) driven from Python for tests and benchmarks."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "deploy" / "local" / "kafka.sh"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalKafka:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.controller_port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"

    def _run(self, *args: str) -> str:
        result = subprocess.run(
            ["bash", str(SCRIPT), *args, "--dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kafka.sh {args[0]} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def start(self, *, fresh: bool = True) -> str:
        """Start the broker; ``fresh=False`` restarts on the existing data (a broker restart, not a new cluster)."""
        ports = ["--port", str(self.port), "--controller-port", str(self.controller_port)]
        self._run("start", *ports, *([] if fresh else ["--no-format"]))
        return self.bootstrap

    def stop(self) -> None:
        self._run("stop")

    def log_text(self) -> str:
        log = self.data_dir / "broker.log"
        return log.read_text(errors="replace") if log.exists() else ""
