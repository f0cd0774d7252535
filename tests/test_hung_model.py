"""A worker whose model hangs is restarted and nothing is lost: /healthz turns red, a restart replays the take.

The real worker process with the real default model, whose forward pass blocks forever
(tests/hung_model_worker.py), against the real broker. The test plays the orchestrator: it polls the
liveness probe as the kubelet does, stops the worker when the probe fails (SIGTERM, then SIGKILL after a
grace period), and starts a healthy one in its place.
"""

from __future__ import annotations

import random
import signal
import time

import pytest
from confluent_kafka import Producer

from app.tools.samples import load_item_names, sample_receipt_event
from harness.http_probe import http_get
from tests.delivery import Run, TopicReader, event_ids, outputs_settle, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.model]

RECEIPTS = 12
PARTITIONS = 2
MODEL_TIMEOUT_S = 2
STUCK_AFTER_S = 6  # three deadlines: a call past it is no slow batch


def _get(url: str) -> tuple[int, str]:
    try:
        return http_get(url)
    except OSError as error:  # not listening yet
        return 0, str(error)


def _produce(run: Run) -> set[str]:
    rng, names = random.Random(14), load_item_names()
    producer = Producer({"bootstrap.servers": run.bootstrap})
    sent = set()
    for index in range(RECEIPTS):
        event = sample_receipt_event(rng, names, index)
        producer.produce(run.input, event.model_dump_json().encode(), event.client_id.encode())
        sent.add(event.event_id)
    assert producer.flush(30) == 0
    return sent


def test_a_hung_model_fails_liveness_and_the_restarted_worker_replays_its_take(kafka_bootstrap, default_model, tmp_path):
    run = Run(kafka_bootstrap, PARTITIONS)
    run.create_topics()
    sent = _produce(run)
    output = TopicReader(run, run.output)
    settings = {"model_timeout_s": MODEL_TIMEOUT_S, "model_stuck_s": STUCK_AFTER_S}
    hung = run.worker(default_model, tmp_path / "hung.log", module="tests.hung_model_worker", **settings).start()
    healthy = None
    base = f"http://127.0.0.1:{hung.metrics_port}"
    try:
        wait_until(lambda: _get(f"{base}/readyz")[0] == 200, 600, "the hung worker to load its model and get partitions")
        wait_until(lambda: "model_stuck" in hung.log_text(), 120, "the model call to outrun its bound")
        status, reason = _get(f"{base}/healthz")
        scrape = _get(f"{base}/metrics")[1]
        red_at = time.monotonic()
        assert status == 503 and "model call on" in reason, (status, reason, hung.log_text()[-3000:])
        assert "receipt_enricher_model_stuck 1.0" in scrape
        # Nothing of the hung take is on the broker or committed: the replay has everything to redo.
        assert len(output) == 0 and all(offset == -1 for offset in run.committed().values())
        # The kubelet after a failed liveness probe: SIGTERM, then SIGKILL when the grace period ends.
        hung.stop(signal.SIGTERM, timeout_s=15)
        healthy = run.worker(default_model, tmp_path / "healthy.log", **settings).start()
        outputs_settle(output, RECEIPTS, timeout_s=600)
        wait_until(run.committed_reaches_end, 120, "committed offsets at the end of every input partition")
        restart_s = time.monotonic() - red_at
        healthy_exit = healthy.stop()
    finally:
        for worker in (hung, healthy):
            if worker is not None and worker.running:
                worker.stop(signal.SIGKILL)
        output.close()
    copies = event_ids(output.snapshot())
    hung_log = hung.log_text()
    assert set(copies) == sent, f"lost {sorted(sent - set(copies))[:3]}"
    assert all(count == 1 for count in copies.values()), "the hung worker published nothing, so nothing repeats"
    assert hung_log.count("model_stuck") == 1, hung_log[-3000:]
    assert healthy_exit == 0, healthy.log_text()[-3000:]
    print(
        f"\nhung_model receipts={RECEIPTS} lost=0 duplicates=0 probe_red=503 model_stuck_metric=1 "
        f"bound_s={STUCK_AFTER_S} replayed_within_s={restart_s:.0f}"
    )
