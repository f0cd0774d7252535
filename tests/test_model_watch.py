"""A model call that never returns is acted on: the liveness probe turns red and one log line and a metric say why.

The real Pipeline, Enricher, Health, HealthServer and Metrics; only the generator is a stand-in whose forward
pass blocks until the test lets it go (the real model hanging in a worker process is tests/test_hung_model.py).
No broker: the records go to a sink that acknowledges everything.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Sequence

from app.ops.health import Health, HealthServer
from app.ops.metrics import Metrics
from app.stages.batcher import BatchLimits
from app.stages.model_watch import ModelWatch
from app.stages.pipeline import InMessage, Pipeline, Topics
from app.tools.samples import load_item_names, sample_receipt_event
from harness.http_probe import http_get
from model.enricher import Enricher
from schemas.events import ModelIdentity
from schemas.taxonomy import load_taxonomy

WAIT_S = 30  # generous: the machine is shared; nothing here measures time
STUCK_AFTER_S = 0.5


class BlockingGenerator:
    """A generator whose forward pass blocks until ``release`` is set, like a wedged kernel."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def generate(self, prompts: Sequence[str]) -> list[str]:
        self.entered.set()
        self.release.wait()
        return ["Хлеб##Хлеб##-##Другое" for _ in prompts]


class AcknowledgingSink:
    async def send_round(self, records):
        return [None] * len(records)

    def close(self) -> None:
        pass


def _message(offset: int) -> InMessage:
    event = sample_receipt_event(random.Random(offset), load_item_names(), offset)
    return InMessage("receipts", 0, offset, None, b"k", event.model_dump_json().encode())


def test_the_watch_names_a_call_that_outruns_its_bound_and_forgets_it_once_it_returns():
    watch = ModelWatch(stuck_after_s=10)
    seen: list[str | None] = []

    def call(batch):
        started = time.monotonic()
        seen.append(watch.stuck(now=started + 9))
        seen.append(watch.stuck(now=started + 11))
        return len(batch)

    assert watch.watched(call)(["a", "b"]) == 2
    assert seen[0] is None
    assert seen[1] is not None and "model call on 2 items running for 11 s" in seen[1]
    assert watch.busy_s() == 0.0 and watch.stuck() is None


def test_a_model_call_that_hangs_turns_the_liveness_probe_red_with_a_metric_and_one_log_line(caplog):
    generator = BlockingGenerator()
    taxonomy = load_taxonomy()
    metrics = Metrics()
    pipeline = Pipeline(
        enrich=Enricher(generator, taxonomy).enrich,
        count_tokens=lambda texts: [10] * len(texts),
        limits=BatchLimits(64, 8192, 55),
        taxonomy=taxonomy,
        identity=ModelIdentity(base_model="test", adapter=None, version="test"),
        sink=AcknowledgingSink(),
        topics=Topics(output="out", dlq="dlq"),
        model_stuck_s=STUCK_AFTER_S,
        metrics=metrics,
    )
    health = Health(metrics=metrics, stall_s=60)
    health.model_ready(pipeline.model_watch.stuck)
    metrics.watch_model(pipeline.model_watch.busy_s, pipeline.model_watch.stuck)
    server = HealthServer("127.0.0.1", 0, metrics.registry, health.not_live_reasons, health.not_ready_reasons).start()
    base = f"http://127.0.0.1:{server.port}"

    async def scenario() -> None:
        take = asyncio.create_task(pipeline.process([_message(1)]))
        assert await asyncio.to_thread(generator.entered.wait, WAIT_S)
        assert http_get(f"{base}/healthz") == (200, "ok\n")  # a call under its bound is just a call
        deadline = time.monotonic() + WAIT_S
        while (probe := http_get(f"{base}/healthz"))[0] == 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        status, body = probe
        assert status == 503 and "model call on" in body and "ENRICHER_MODEL_STUCK_S=0.5" in body, body
        scrape = http_get(f"{base}/metrics")[1]
        assert "receipt_enricher_model_stuck 1.0" in scrape
        # The pipeline's own wait notices within a second and says it once, however long the call stays stuck.
        while "model_stuck" not in caplog.text and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(3 * STUCK_AFTER_S)
        assert not take.done()
        generator.release.set()  # the call returns after all (in production the restart comes first)
        result = await asyncio.wait_for(take, WAIT_S)
        assert result.receipts == 1
        assert http_get(f"{base}/healthz") == (200, "ok\n")
        assert "receipt_enricher_model_stuck 0.0" in http_get(f"{base}/metrics")[1]

    try:
        with caplog.at_level(logging.INFO, logger="app.stages.pipeline"):
            asyncio.run(asyncio.wait_for(scenario(), 4 * WAIT_S))
    finally:
        generator.release.set()
        server.stop()
        pipeline.close()
    stuck_lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("model_stuck")]
    assert len(stuck_lines) == 1, stuck_lines
    assert "bound_s=0.5" in stuck_lines[0] and "action=liveness_fails" in stuck_lines[0]
