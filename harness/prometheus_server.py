"""A real Prometheus server (Debian's ``prometheus`` binary) with a temporary config and TSDB, for tests and renders.

Never the Debian service: each instance is a child process on a free loopback port, stopped by ``stop()``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from harness.kafka_broker import free_port


class PrometheusError(RuntimeError):
    """Prometheus did not start or refused a query; the message carries its answer or its log's tail."""


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


class PrometheusApi:
    """The HTTP API of a Prometheus at ``url`` (ours or one already running)."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def api(self, path: str, **params: object) -> object:
        """GET /api/v1/<path>; returns ``data``, raises PrometheusError with Prometheus's own error text."""
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        params: dict[str, object] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self.api("query", **params)["result"]

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> list[dict]:
        return self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=f"{step_s:g}")["result"]


class PrometheusServer(PrometheusApi):
    def __init__(self, work_dir: Path, scrape_targets: dict[str, list[str]], rule_files: list[Path], interval_s: float = 1.0) -> None:
        self.work_dir = Path(work_dir)
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}")
        self._targets = scrape_targets
        self._rule_files = rule_files
        self._interval = f"{interval_s:g}s"
        self._process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> "PrometheusServer":
        binary = prometheus_binary()
        if binary is None:
            raise PrometheusError("no prometheus binary: apt-get install -y prometheus (.ci/run does)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": self._interval, "evaluation_interval": self._interval, "scrape_timeout": self._interval},
            "rule_files": [str(path) for path in self._rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]} for job, targets in self._targets.items()
            ],
        }
        config_path = self.work_dir / "prometheus.yml"
        config_path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        self._log = (self.work_dir / "prometheus.log").open("ab")
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={self.work_dir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1d",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PrometheusError(f"prometheus exited with {self._process.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as response:
                    if response.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.3)
        raise PrometheusError(f"prometheus not ready within {timeout_s:.0f} s: {self.log_tail()}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(10)
        if self._process is not None:
            self._log.close()

    def log_tail(self, chars: int = 2000) -> str:
        path = self.work_dir / "prometheus.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""
