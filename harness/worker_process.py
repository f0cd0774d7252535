"""Run the real worker (``receipt-enricher worker``) as a child process, as an operator would."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from harness.kafka_broker import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path, module: str = "app.cli") -> None:
        """``module`` runs with ``worker`` as its argument: the real CLI, or a test's variant of the worker."""
        self.module = module
        # Every worker serves /metrics on ENRICHER_METRICS_PORT and refuses a taken port; tests on one
        # machine (and helpers running tests side by side) get a free port unless they choose one.
        self.metrics_port = int(env.get("ENRICHER_METRICS_PORT") or free_port())
        self._env = {**os.environ, **OFFLINE_ENV, **env, "ENRICHER_METRICS_PORT": str(self.metrics_port)}
        self.log_path = log_path
        self._process: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [sys.executable, "-m", self.module, "worker"],
            cwd=REPO_ROOT,
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        return self

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 60) -> int:
        assert self._process is not None
        if self._process.poll() is None:
            self._process.send_signal(sig)
            try:
                self._process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        return self._process.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")
