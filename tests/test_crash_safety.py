"""Crashes lose nothing: SIGKILL mid-stream repeats only the uncommitted window; SIGTERM repeats nothing.

The real worker process with the real default model, against the real broker, while receipts keep coming.
"""

from __future__ import annotations

import random
import signal

import orjson
import pytest

from tests.delivery import Run, SteadyProducer, TopicReader, outputs_settle, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.model]

PARTITIONS = 3
KILLS = 5
TAKE_MAX_EVENTS = 32
RECEIPTS_PER_SECOND = 8


def _copies(records) -> dict[str, list[tuple[int, int]]]:
    """event id → the output positions (partition, offset) of each of its copies."""
    copies: dict[str, list[tuple[int, int]]] = {}
    for partition, offset, value in records:
        copies.setdefault(orjson.loads(value)["event_id"], []).append((partition, offset))
    return copies


def _wait_for_progress(output: TopicReader, rng: random.Random) -> None:
    """Return at a seeded random moment while the worker is processing: after 5–60 new outputs."""
    target = len(output) + rng.randint(5, 60)
    wait_until(lambda: len(output) >= target, 600, f"the worker to publish up to {target} records")


def test_five_sigkills_mid_stream_lose_nothing_and_duplicate_only_the_uncommitted_window(
    kafka_bootstrap, default_model, tmp_path
):
    run = Run(kafka_bootstrap, PARTITIONS)
    run.create_topics()
    rng = random.Random(606)
    output = TopicReader(run, run.output)
    producer = SteadyProducer(run, seed=6, per_second=RECEIPTS_PER_SECOND).start()
    settings = {"take_max_events": TAKE_MAX_EVENTS, "commit_interval_s": 1}
    # Per kill: what the group had committed and how far the output topic reached when the worker died.
    kills: list[tuple[dict[int, int], dict[int, int]]] = []
    worker = None
    try:
        for _ in range(KILLS):
            worker = run.worker(default_model, tmp_path / "worker.log", **settings).start()
            _wait_for_progress(output, rng)
            worker.stop(signal.SIGKILL)
            kills.append((run.committed(), run.high_watermarks(run.output)))
        worker = run.worker(default_model, tmp_path / "worker.log", **settings).start()
        positions = producer.stop()
        outputs_settle(output, len(positions), timeout_s=600)
        wait_until(run.committed_reaches_end, 120, "committed offsets at the end of every input partition")
        exit_code = worker.stop()
    finally:
        producer.close()
        if worker is not None and worker.running:
            worker.stop(signal.SIGKILL)
        output.close()
    log = worker.log_text()
    copies = _copies(output.snapshot())

    lost = set(positions) - set(copies)
    assert not lost, f"{len(lost)} receipts lost, e.g. {sorted(lost)[:3]}\n{log[-3000:]}"
    assert set(copies) <= set(positions)

    # The bound: a receipt is repeated at most once per kill that caught it published but not yet
    # committed — its input offset at or past the committed one, a copy already in the output.
    windows = [0] * KILLS
    for event_id, places in copies.items():
        partition, offset = positions[event_id]
        caught = 0
        for index, (committed, output_ends) in enumerate(kills):
            if offset >= committed[partition] and any(o < output_ends[p] for p, o in places):
                caught += 1
                windows[index] += 1
        assert len(places) - 1 <= caught, (event_id, positions[event_id], places, kills)
    duplicates = sum(len(places) - 1 for places in copies.values())
    assert duplicates <= sum(windows)
    print(
        f"\ncrash_safety kills={KILLS} receipts={len(positions)} lost={len(lost)} duplicates={duplicates} "
        f"uncommitted_windows={windows} take_max_events={TAKE_MAX_EVENTS} partitions={PARTITIONS}"
    )
    assert exit_code == 0, log[-3000:]


def test_sigterm_mid_stream_commits_what_it_published_so_the_restart_repeats_nothing(
    kafka_bootstrap, default_model, tmp_path
):
    run = Run(kafka_bootstrap, PARTITIONS)
    run.create_topics()
    rng = random.Random(315)
    output = TopicReader(run, run.output)
    producer = SteadyProducer(run, seed=7, per_second=RECEIPTS_PER_SECOND).start()
    settings = {"take_max_events": TAKE_MAX_EVENTS, "commit_interval_s": 1}
    worker = first = run.worker(default_model, tmp_path / "first.log", **settings).start()
    try:
        _wait_for_progress(output, rng)
        # A backlog of several takes: whenever the signal lands, a take is in flight.
        burst_end = producer.sent + 8 * TAKE_MAX_EVENTS
        producer.burst(8 * TAKE_MAX_EVENTS)
        wait_until(lambda: producer.delivered() >= burst_end, 120, "the burst to reach the broker")
        first_exit = first.stop(signal.SIGTERM, timeout_s=180)
        committed, output_ends = run.committed(), run.high_watermarks(run.output)
        worker = run.worker(default_model, tmp_path / "second.log", **settings).start()
        positions = producer.stop()
        outputs_settle(output, len(positions), timeout_s=600)
        wait_until(run.committed_reaches_end, 120, "committed offsets at the end of every input partition")
        second_exit = worker.stop()
    finally:
        producer.close()
        if worker.running:
            worker.stop(signal.SIGKILL)
        output.close()
    log = worker.log_text()
    copies = _copies(output.snapshot())

    assert first_exit == 0 and second_exit == 0, log[-3000:]
    first_log = first.log_text()
    finished_after_signal = first_log.split("Signal received", 1)[1].count("take_done")
    assert finished_after_signal >= 1, "no take was in flight at SIGTERM, the test proved nothing:\n" + first_log[-3000:]
    before_stop = {e for e, places in copies.items() if any(o < output_ends[p] for p, o in places)}
    committed_events = {e for e, (p, o) in positions.items() if o < committed[p]}
    # Shutdown committed exactly what it had published: nothing published is left to redo, nothing
    # committed is unpublished.
    assert before_stop == committed_events, (len(before_stop), len(committed_events), committed)
    assert set(copies) == set(positions), log[-3000:]
    duplicated = {e: len(places) for e, places in copies.items() if len(places) > 1}
    assert not duplicated, f"{len(duplicated)} receipts published twice after a graceful stop"
    print(
        f"\ngraceful_stop receipts={len(positions)} published_before_stop={len(before_stop)} "
        f"takes_finished_after_sigterm={finished_after_signal} duplicates=0"
    )
