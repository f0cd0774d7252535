"""`make demo` stops at once, with one line saying what to do, when it cannot run, and starts nothing."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.conftest import REPO_ROOT

DEMO = REPO_ROOT / "deploy" / "local" / "demo.sh"


def _run_demo(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(DEMO)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)


def _no_demo_broker_running() -> bool:
    found = subprocess.run(["pgrep", "-f", "demo-kafka"], capture_output=True, text=True)
    return found.returncode != 0


def test_a_taken_port_stops_the_demo_with_one_line_and_nothing_started():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run_demo({**os.environ, "DEMO_KAFKA_PORT": str(port)})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines == [f"demo: port {port} is taken (another broker or demo?): stop it, or run DEMO_KAFKA_PORT=<free port> make demo"]
    assert "plan:" not in result.stdout  # stopped before installing or building anything
    assert _no_demo_broker_running()


def test_missing_java_stops_the_demo_with_one_line(tmp_path: Path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "bash"):  # what the script needs before its first check; no java
        (bin_dir / tool).symlink_to(subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip())
    result = _run_demo({"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "demo: Java is missing: install a JRE 17+ (apt-get install default-jre-headless) and run again"
    ]
