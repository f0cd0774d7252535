"""The backfill's pure parts: range resolution, the job's identity, resume bookkeeping, the throttle."""

from __future__ import annotations

import argparse

import pytest

from app.backfill.plan import (
    BackfillRefused,
    JobSpec,
    PartitionRange,
    Throttle,
    TimeWindow,
    add_arguments,
    decode_metadata,
    encode_metadata,
    parse_offsets,
    parse_time,
    plan_by_offsets,
    plan_by_time,
    request_from_args,
    resume_from,
)
from app.settings import Settings

T0 = parse_time("2026-11-30T00:00:00Z")


def _spec(**changes) -> JobSpec:
    values = {
        "input_topic": "receipts",
        "output_topic": "backfill",
        "dlq_topic": "receipts.dlq",
        "window": TimeWindow(T0, T0 + 3_600_000, 600_000),
    }
    values.update(changes)
    return JobSpec(**values)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_iso_timestamps_need_a_zone_and_are_epoch_milliseconds():
    assert parse_time("2026-11-30T00:00:00Z") == 1_795_996_800_000
    assert parse_time("2026-11-30T03:00:00+03:00") == parse_time("2026-11-30T00:00:00Z")
    with pytest.raises(BackfillRefused, match="no time zone"):
        parse_time("2026-11-30T00:00:00")
    with pytest.raises(BackfillRefused, match="not an ISO 8601"):
        parse_time("yesterday")


def test_window_is_half_open_and_a_reversed_or_empty_range_is_refused():
    window = TimeWindow(T0, T0 + 1000)
    assert window.contains(T0) and window.contains(T0 + 999)
    assert not window.contains(T0 - 1) and not window.contains(T0 + 1000)
    with pytest.raises(BackfillRefused, match="empty or reversed"):
        TimeWindow(T0 + 1000, T0)
    with pytest.raises(BackfillRefused, match="empty or reversed"):
        TimeWindow(T0, T0)


def test_offsets_are_parsed_per_partition_and_malformed_lists_are_refused():
    assert parse_offsets("0:120, 1:0,2:4455") == {0: 120, 1: 0, 2: 4455}
    for bad in ("0=1", "a:1", "0:-1", "0:1,0:2", ""):
        with pytest.raises(BackfillRefused):
            parse_offsets(bad)


def test_time_plan_starts_at_the_first_record_from_and_ends_at_to_plus_late_capped_at_the_captured_end():
    watermarks = {0: (0, 100), 1: (10, 50), 2: (0, 0), 3: (0, 70)}
    first_at_from = {0: 20, 1: None, 2: None, 3: 5}  # None: no record stamped that late
    first_at_end = {0: 60, 1: None, 2: None, 3: None}
    plan = plan_by_time(watermarks, first_at_from, first_at_end)
    assert plan == {
        0: PartitionRange(0, 20, 60),
        1: PartitionRange(1, 50, 50),  # nothing at or after `from`: empty
        2: PartitionRange(2, 0, 0),  # empty partition
        3: PartitionRange(3, 5, 70),  # nothing at or after `to + late`: up to the captured end
    }


def test_time_plan_never_reads_past_the_end_captured_at_start():
    # Records produced between capturing the watermarks and asking ListOffsets are the live worker's.
    plan = plan_by_time({0: (0, 40)}, {0: 45}, {0: 90})
    assert plan == {0: PartitionRange(0, 40, 40)}


def test_offset_plan_defaults_the_end_to_the_captured_end_and_refuses_offsets_outside_the_log():
    watermarks = {0: (0, 100), 1: (30, 60)}
    assert plan_by_offsets(watermarks, {0: 10, 1: 30}, {0: 20}) == {
        0: PartitionRange(0, 10, 20),
        1: PartitionRange(1, 30, 60),
    }
    with pytest.raises(BackfillRefused, match="gone"):
        plan_by_offsets(watermarks, {1: 29}, None)
    with pytest.raises(BackfillRefused, match="past the end"):
        plan_by_offsets(watermarks, {0: 0}, {0: 101})
    with pytest.raises(BackfillRefused, match="does not exist"):
        plan_by_offsets(watermarks, {5: 0}, None)


def test_a_job_is_either_a_time_range_or_an_offset_range_and_never_writes_to_its_input():
    with pytest.raises(BackfillRefused, match="either"):
        _spec(from_offsets={0: 1})
    with pytest.raises(BackfillRefused, match="either"):
        _spec(window=None)
    with pytest.raises(BackfillRefused, match="before"):
        _spec(window=None, from_offsets={0: 10}, to_offsets={0: 5})
    with pytest.raises(BackfillRefused, match="does not"):
        _spec(window=None, from_offsets={0: 10}, to_offsets={1: 50})
    with pytest.raises(BackfillRefused, match="must differ"):
        _spec(output_topic="receipts")


def test_the_fingerprint_changes_with_range_and_topics_but_not_with_dict_order():
    base = _spec()
    assert base.fingerprint() == _spec().fingerprint()
    assert base.fingerprint() != _spec(output_topic="other").fingerprint()
    assert base.fingerprint() != _spec(window=TimeWindow(T0, T0 + 3_600_001, 600_000)).fingerprint()
    assert base.fingerprint() != _spec(window=TimeWindow(T0, T0 + 3_600_000, 0)).fingerprint()
    by_offsets = _spec(window=None, from_offsets={0: 1, 1: 2})
    assert by_offsets.fingerprint() == _spec(window=None, from_offsets={1: 2, 0: 1}).fingerprint()


def test_commit_metadata_round_trips_and_foreign_metadata_is_not_mistaken_for_a_plan():
    text = encode_metadata("abc123", PartitionRange(3, 10, 99))
    assert len(text) < 4096  # offset.metadata.max.bytes default
    assert decode_metadata(text) == ("abc123", 10, 99)
    for foreign in (None, "", "faust", "{}", '{"v": 2, "job": "x", "start": 1, "end": 2}', "[1]"):
        assert decode_metadata(foreign) is None


def _fresh():
    return {0: PartitionRange(0, 5, 10), 1: PartitionRange(1, 0, 0), 2: PartitionRange(2, 3, 8)}


def test_a_new_job_reads_its_fresh_plan_and_counts_empty_partitions_as_finished():
    resume = resume_from("job1", {}, _fresh)
    assert not resume.resumed
    assert resume.todo == {0: PartitionRange(0, 5, 10), 2: PartitionRange(2, 3, 8)}
    assert resume.finished == [1]


def test_resume_skips_finished_partitions_and_continues_the_others_to_the_stored_end():
    stored = {p: r for p, r in _fresh().items()}
    committed = {
        0: (10, encode_metadata("job1", stored[0])),  # finished
        1: (0, encode_metadata("job1", stored[1])),  # empty, finished
        2: (6, encode_metadata("job1", stored[2])),  # half done
    }

    def must_not_replan():
        raise AssertionError("a resumed job must use its stored plan, not the log's current ends")

    resume = resume_from("job1", committed, must_not_replan)
    assert resume.resumed
    assert resume.finished == [0, 1]
    assert resume.todo == {2: PartitionRange(2, 6, 8)}
    assert resume.plan == stored


def test_resume_refuses_another_jobs_group_and_a_live_consumers_offsets():
    stored = _fresh()
    with pytest.raises(BackfillRefused, match="another backfill job"):
        resume_from("job2", {0: (7, encode_metadata("job1", stored[0]))}, _fresh)
    with pytest.raises(BackfillRefused, match="no backfill wrote"):
        resume_from("job1", {0: (7, "")}, _fresh)
    with pytest.raises(BackfillRefused, match="outside"):
        resume_from("job1", {0: (11, encode_metadata("job1", stored[0]))}, _fresh)


def test_throttle_paces_the_average_rate_from_the_start():
    now = [100.0]
    throttle = Throttle(4.0, clock=lambda: now[0])
    assert throttle.delay_s(0) == 0.0
    assert throttle.delay_s(8) == pytest.approx(2.0)  # 8 receipts at 4/s take 2 s
    now[0] = 101.5
    assert throttle.delay_s(8) == pytest.approx(0.5)
    now[0] = 110.0
    assert throttle.delay_s(8) == 0.0
    throttle.start()  # reading starts after the model loaded: no allowance saved up meanwhile
    assert throttle.delay_s(8) == pytest.approx(2.0)
    assert throttle.take_size(256) == 4
    assert Throttle(0.5).take_size(256) == 1
    assert Throttle(None).delay_s(10_000) == 0.0 and Throttle(None).take_size(256) == 256
    with pytest.raises(BackfillRefused):
        Throttle(0)


def test_the_command_line_derives_the_group_from_the_live_group_and_refuses_the_live_group_itself():
    settings = Settings(group_id="receipt-enricher")
    request = request_from_args(
        settings, _args("--from", "2026-11-30T00:00:00Z", "--to", "2026-11-30T01:00:00Z", "--output-topic", "bf")
    )
    assert request.group == f"receipt-enricher.backfill.{request.spec.fingerprint()}"
    assert request.spec.window == TimeWindow(T0, T0 + 3_600_000, 600_000)
    assert (
        request_from_args(settings, _args("--from-offsets", "0:1", "--job", "nov")).group
        == "receipt-enricher.backfill.nov"
    )
    with pytest.raises(BackfillRefused, match="live worker's group"):
        request_from_args(settings, _args("--from-offsets", "0:1", "--group", "receipt-enricher"))
    with pytest.raises(BackfillRefused, match="both --from and --to"):
        request_from_args(settings, _args("--from", "2026-11-30T00:00:00Z"))
    with pytest.raises(BackfillRefused, match="job"):
        request_from_args(settings, _args("--from-offsets", "0:1", "--job", "a b"))
