"""The broker restarts (same data, same ports) while the worker is processing: it reconnects by itself."""

from __future__ import annotations

import random
import signal

import pytest

from harness.kafka_broker import LocalKafka
from tests.delivery import Run, SteadyProducer, TopicReader, event_ids, outputs_settle, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.model]


def test_the_worker_rides_out_a_broker_restart_and_loses_nothing(default_model, tmp_path):
    broker = LocalKafka(tmp_path / "kafka")
    broker.start()
    worker = producer = output = None
    try:
        run = Run(broker.bootstrap, 3)
        run.create_topics()
        output = TopicReader(run, run.output)
        producer = SteadyProducer(run, seed=9, per_second=8).start()
        worker = run.worker(default_model, tmp_path / "worker.log").start()
        before_restart = random.Random(596).randint(20, 60)
        wait_until(lambda: len(output) >= before_restart, 600, "the worker to publish")
        broker.restart()
        after_restart = len(output)
        wait_until(lambda: len(output) >= after_restart + 40, 600, "processing to resume after the broker restart")
        positions = producer.stop()
        outputs_settle(output, len(positions), timeout_s=600)
        wait_until(run.committed_reaches_end, 180, "committed offsets at the end of every input partition")
        assert worker.running, "the worker exited instead of reconnecting:\n" + worker.log_text()[-3000:]
        exit_code = worker.stop()
        copies = event_ids(output.snapshot())
    finally:
        if producer is not None:
            producer.close()
        if worker is not None and worker.running:
            worker.stop(signal.SIGKILL)
        if output is not None:
            output.close()
        broker.stop()

    lost = set(positions) - set(copies)
    assert not lost, f"{len(lost)} receipts lost, e.g. {sorted(lost)[:3]}"
    assert exit_code == 0, worker.log_text()[-3000:]
    duplicates = sum(count - 1 for count in copies.values())
    print(f"\nbroker_restart receipts={len(positions)} lost=0 duplicates={duplicates}")
