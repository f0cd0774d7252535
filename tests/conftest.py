"""Session fixtures for the real services: started once, only when a test asks for them."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.kafka_broker import LocalKafka

REPO_ROOT = Path(__file__).resolve().parent.parent

for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(variable, "1")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory) -> LocalKafka:
    """One real broker for the whole session on free ports; never restart it (use your own LocalKafka for that)."""
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalKafka) -> str:
    return kafka_broker.bootstrap


@dataclass(frozen=True)
class DefaultModel:
    base: Path
    adapter: Path


@pytest.fixture(scope="session")
def default_model() -> DefaultModel:
    """The project's default model, built by the real build command if this checkout has none yet."""
    out = REPO_ROOT / "models" / "default"
    if not (out / "manifest.json").exists():
        subprocess.run([sys.executable, "-m", "training.build_default_model", "--out", str(out)], cwd=REPO_ROOT, check=True)
    return DefaultModel(base=out / "base", adapter=out / "adapter")
