"""A second worker joins the group mid-stream and the first one leaves: no receipt is lost, and none repeated.

Both hand-overs are graceful (a join, then a SIGTERM), so every partition changes owner with its acked
offsets committed first (app/kafka/consumer.py) and its takes in flight finished: 0 duplicates. A crash
repeats a bounded window instead (tests/test_crash_safety.py).
"""

from __future__ import annotations

import random
import signal

import pytest
from confluent_kafka.admin import AdminClient

from tests.delivery import Run, SteadyProducer, TopicReader, event_ids, outputs_settle, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.model]

PARTITIONS = 4


def _members(run: Run) -> int:
    admin = AdminClient({"bootstrap.servers": run.bootstrap})
    group = admin.describe_consumer_groups([run.group])[run.group].result(30)
    return len(group.members)


def test_a_worker_joining_and_another_leaving_mid_stream_lose_no_receipt(kafka_bootstrap, default_model, tmp_path):
    run = Run(kafka_bootstrap, PARTITIONS)
    run.create_topics()
    rng = random.Random(629)
    output = TopicReader(run, run.output)
    producer = SteadyProducer(run, seed=8, per_second=8).start()
    first = run.worker(default_model, tmp_path / "first.log").start()
    second = run.worker(default_model, tmp_path / "second.log")
    try:
        first_target = rng.randint(20, 60)
        wait_until(lambda: len(output) >= first_target, 600, "the first worker to publish")
        second.start()
        wait_until(lambda: _members(run) == 2, 300, "the second worker to join the group")
        wait_until(lambda: "take_done" in second.log_text(), 300, "the second worker's first take")
        at_join = len(output)
        first_exit = first.stop(signal.SIGTERM, timeout_s=180)
        wait_until(lambda: _members(run) == 1, 300, "the first worker to leave the group")
        wait_until(lambda: len(output) >= at_join + 40, 600, "the second worker to carry on alone")
        positions = producer.stop()
        outputs_settle(output, len(positions), timeout_s=600)
        wait_until(run.committed_reaches_end, 120, "committed offsets at the end of every input partition")
        second_exit = second.stop()
    finally:
        producer.close()
        for worker in (first, second):
            if worker.running:
                worker.stop(signal.SIGKILL)
        output.close()
    logs = first.log_text()[-2000:] + "\n---\n" + second.log_text()[-2000:]
    copies = event_ids(output.snapshot())

    lost = set(positions) - set(copies)
    assert not lost, f"{len(lost)} receipts lost, e.g. {sorted(lost)[:3]}\n{logs}"
    assert first_exit == 0 and second_exit == 0, logs
    duplicates = {event_id: count for event_id, count in copies.items() if count > 1}
    print(f"\nrebalance receipts={len(positions)} lost=0 duplicates={sum(duplicates.values()) - len(duplicates)} partitions={PARTITIONS}")
    assert not duplicates, f"{len(duplicates)} receipts published twice on a graceful hand-over, e.g. {sorted(duplicates)[:3]}\n{logs}"
