"""Session fixtures for the real services: started once, only when a test asks for them."""

from __future__ import annotations

import os

import pytest

from tests.kafka_broker import LocalKafka

for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(variable, "1")


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory) -> LocalKafka:
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalKafka) -> str:
    return kafka_broker.bootstrap
