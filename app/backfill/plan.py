"""The backfill job's definition, without I/O: range resolution, the job's identity, resume bookkeeping, pacing.

What "in the window" means (``--from``/``--to``): the record's Kafka timestamp (CreateTime, set by the
producer; LogAppendTime where the topic is configured so) satisfies ``from <= ts < to``. Per partition
the job reads the offsets ``[start, end)``:
  start = the first offset whose timestamp is >= from (Kafka's ListOffsets by time; every earlier
          offset holds a record stamped before ``from``, so nothing of the window precedes it);
  end   = the first offset whose timestamp is >= to + late, capped at the end offset captured when
          the job was planned (records arriving later are the live worker's, never the job's).
Timestamps are not ordered within a partition, so each record read is filtered by its own timestamp:
one stamped before ``from`` or at/after ``to`` is skipped (counted as ``out_of_window``); a record of
the window written after a record stamped at or past ``to + late`` lies beyond ``end`` and is not
replayed (raise ``--late-s`` for producers whose clocks or retries lag more than that).
With ``--from-offsets``/``--to-offsets`` the range is given per partition and nothing is filtered.

The plan (start and end per partition, the job's fingerprint) travels as Kafka commit metadata of the
job's own group (app/backfill/run.py), so a resumed run continues exactly the job that was started.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from app.settings import Settings

# EX_TEMPFAIL: the job stopped early on a signal; running the same command again resumes it.
EXIT_INTERRUPTED = 75
METADATA_VERSION = 1
_JOB_NAME = re.compile(r"^[A-Za-z0-9._-]{1,100}$")


class BackfillRefused(ValueError):
    """The job cannot start as asked (bad range, missing topic, group in use); the message says what to change."""


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """Records with ``from_ms <= timestamp < to_ms``; the scan runs ``late_ms`` past ``to_ms`` in record time."""

    from_ms: int
    to_ms: int
    late_ms: int = 0

    def __post_init__(self) -> None:
        if self.to_ms <= self.from_ms:
            raise BackfillRefused(
                f"the range is empty or reversed: --to ({_iso(self.to_ms)}) must be after --from ({_iso(self.from_ms)})"
            )
        if self.late_ms < 0:
            raise BackfillRefused("--late-s must not be negative")

    def contains(self, timestamp_ms: int) -> bool:
        return self.from_ms <= timestamp_ms < self.to_ms


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What the job replays and where to; two runs with equal specs are the same job."""

    input_topic: str
    output_topic: str
    dlq_topic: str
    window: TimeWindow | None = None
    from_offsets: Mapping[int, int] | None = None
    to_offsets: Mapping[int, int] | None = None

    def __post_init__(self) -> None:
        if (self.window is None) == (self.from_offsets is None):
            raise BackfillRefused("give either --from/--to (timestamps) or --from-offsets (per partition), not both")
        if self.to_offsets is not None and self.from_offsets is None:
            raise BackfillRefused("--to-offsets needs --from-offsets")
        if self.output_topic == self.input_topic:
            raise BackfillRefused(f"--output-topic must differ from the input topic {self.input_topic}")
        if self.from_offsets is not None:
            extra = sorted(set(self.to_offsets or {}) - set(self.from_offsets))
            if extra:
                raise BackfillRefused(f"--to-offsets names partitions {extra} that --from-offsets does not")
            for partition, start in self.from_offsets.items():
                end = (self.to_offsets or {}).get(partition)
                if end is not None and end < start:
                    raise BackfillRefused(f"partition {partition}: --to-offsets {end} is before --from-offsets {start}")

    def fingerprint(self) -> str:
        """12 hex digits identifying the job; stored with every commit and checked on resume."""
        document = {
            "input": self.input_topic,
            "output": self.output_topic,
            "dlq": self.dlq_topic,
            "window": [self.window.from_ms, self.window.to_ms, self.window.late_ms] if self.window else None,
            "from_offsets": sorted((self.from_offsets or {}).items()),
            "to_offsets": sorted((self.to_offsets or {}).items()),
        }
        return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def default_group(live_group: str, job: str) -> str:
    return f"{live_group}.backfill.{job}"


def check_job_name(job: str) -> str:
    if not _JOB_NAME.match(job):
        raise BackfillRefused(f"--job {job!r}: use 1-100 letters, digits, '.', '_' or '-'")
    return job


def parse_time(text: str) -> int:
    """An ISO 8601 timestamp with a zone (``2026-11-30T00:00:00Z``, ``…+03:00``) as epoch milliseconds."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BackfillRefused(f"{text!r} is not an ISO 8601 timestamp (e.g. 2026-11-30T00:00:00Z)") from None
    if moment.tzinfo is None:
        raise BackfillRefused(f"{text!r} has no time zone; append Z for UTC or an offset such as +03:00")
    return round(moment.timestamp() * 1000)


def parse_offsets(text: str) -> dict[int, int]:
    """``0:120,1:0,2:4455`` → {partition: offset}."""
    offsets: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        partition, sep, offset = part.partition(":")
        if not sep or not partition.isdigit() or not offset.isdigit():
            raise BackfillRefused(f"{part!r}: write offsets as PARTITION:OFFSET[,PARTITION:OFFSET…], e.g. 0:120,1:0")
        if int(partition) in offsets:
            raise BackfillRefused(f"partition {partition} is named twice in {text!r}")
        offsets[int(partition)] = int(offset)
    if not offsets:
        raise BackfillRefused(f"{text!r} names no partition")
    return offsets


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """Offsets ``[start, end)`` of one partition."""

    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


Watermarks = Mapping[int, tuple[int, int]]  # partition → (low, high) at planning time


def plan_by_time(
    watermarks: Watermarks, first_at_from: Mapping[int, int | None], first_at_end: Mapping[int, int | None]
) -> dict[int, PartitionRange]:
    """Ranges from ListOffsets-by-time answers: the first offset stamped >= from, and >= to + late.

    ``None`` means no record is stamped that late: the range then runs to the captured high watermark.
    """
    ranges = {}
    for partition, (_low, high) in sorted(watermarks.items()):
        start = first_at_from.get(partition)
        end = first_at_end.get(partition)
        start = high if start is None else min(start, high)
        end = high if end is None else min(end, high)
        ranges[partition] = PartitionRange(partition, start, max(start, end))
    return ranges


def plan_by_offsets(
    watermarks: Watermarks, from_offsets: Mapping[int, int], to_offsets: Mapping[int, int] | None
) -> dict[int, PartitionRange]:
    """Ranges as given; a missing end is the captured high watermark. Offsets outside the log are refused."""
    ranges = {}
    for partition, start in sorted(from_offsets.items()):
        if partition not in watermarks:
            raise BackfillRefused(f"partition {partition} does not exist (the topic has {sorted(watermarks)})")
        low, high = watermarks[partition]
        end = (to_offsets or {}).get(partition, high)
        if start < low:
            raise BackfillRefused(
                f"partition {partition}: offset {start} is gone (retention); the earliest kept offset is {low}"
            )
        if end > high:
            raise BackfillRefused(f"partition {partition}: --to-offsets {end} is past the end of the log ({high})")
        ranges[partition] = PartitionRange(partition, start, end)
    return ranges


def encode_metadata(fingerprint: str, scope: PartitionRange) -> str:
    return orjson.dumps({"v": METADATA_VERSION, "job": fingerprint, "start": scope.start, "end": scope.end}).decode()


def decode_metadata(text: str | None) -> tuple[str, int, int] | None:
    """(fingerprint, start, end) from a commit's metadata, or None if a backfill did not write it."""
    if not text:
        return None
    try:
        document = orjson.loads(text)
        if document.get("v") != METADATA_VERSION:
            return None
        return str(document["job"]), int(document["start"]), int(document["end"])
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Resume:
    """What this run does: the ranges still to read, the partitions already finished, the whole plan."""

    todo: dict[int, PartitionRange]
    finished: list[int]
    plan: dict[int, PartitionRange]
    resumed: bool


def resume_from(
    fingerprint: str,
    committed: Mapping[int, tuple[int, str | None]],
    fresh_plan: Callable[[], dict[int, PartitionRange]],
) -> Resume:
    """Continue the job recorded in ``committed`` (partition → (offset, metadata)), or start ``fresh_plan()``.

    A group with commits that are not this job's (another window, the live worker's offsets) is refused:
    continuing would mix two jobs' outputs or skip records.
    """
    if not committed:
        plan = fresh_plan()
        todo = {p: r for p, r in plan.items() if r.size}
        return Resume(todo=todo, finished=[p for p in plan if p not in todo], plan=plan, resumed=False)
    plan: dict[int, PartitionRange] = {}
    todo: dict[int, PartitionRange] = {}
    finished: list[int] = []
    for partition, (offset, metadata) in sorted(committed.items()):
        decoded = decode_metadata(metadata)
        if decoded is None:
            raise BackfillRefused(
                f"the group has offsets on partition {partition} that no backfill wrote (a live consumer's group?); "
                "choose another --group or --job"
            )
        job, start, end = decoded
        if job != fingerprint:
            raise BackfillRefused(
                f"the group holds another backfill job ({job}, this one is {fingerprint}: a different range or "
                "topic); rerun that job's exact command to finish it, or choose another --job/--group"
            )
        if not start <= offset <= end:
            raise BackfillRefused(
                f"partition {partition}: committed offset {offset} lies outside the job's range [{start}, {end})"
            )
        plan[partition] = PartitionRange(partition, start, end)
        if offset == end:
            finished.append(partition)
        else:
            todo[partition] = PartitionRange(partition, offset, end)
    return Resume(todo=todo, finished=finished, plan=plan, resumed=True)


class Throttle:
    """Paces the job to at most ``rate`` receipts per second on average since reading started."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate is not None and rate <= 0:
            raise BackfillRefused("--max-receipts-per-s must be positive")
        self.rate = rate
        self._clock = clock
        self._started = clock()

    def start(self) -> None:
        """Count from now: the minutes spent loading the model must not become a burst allowance."""
        self._started = self._clock()

    def delay_s(self, receipts_done: int) -> float:
        """How long to wait before the next take so that ``receipts_done`` took at least done/rate seconds."""
        if self.rate is None:
            return 0.0
        return max(0.0, self._started + receipts_done / self.rate - self._clock())

    def take_size(self, take_max_events: int) -> int:
        # One second's worth per take at most, so the pace is smooth rather than bursts of a full take.
        return take_max_events if self.rate is None else max(1, min(take_max_events, int(self.rate)))


@dataclass(slots=True)
class BackfillSummary:
    job: str
    group: str
    output_topic: str
    receipts: int = 0
    items: int = 0
    dead_letters: int = 0
    out_of_window: int = 0
    partitions: int = 0
    finished_before: list[int] = field(default_factory=list)
    duration_s: float = 0.0
    interrupted: bool = False

    def line(self) -> str:
        status = "interrupted" if self.interrupted else "done"
        return (
            f"backfill_summary status={status} job={self.job} group={self.group} output={self.output_topic} "
            f"receipts={self.receipts} items={self.items} dead_letters={self.dead_letters} "
            f"out_of_window={self.out_of_window} partitions={self.partitions} "
            f"finished_before={','.join(map(str, self.finished_before)) or '-'} duration_s={self.duration_s:.1f}"
        )


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


@dataclass(frozen=True, slots=True)
class BackfillRequest:
    spec: JobSpec
    job: str
    group: str
    max_receipts_per_s: float | None = None
    progress: bool = True


def make_request(
    settings: Settings,
    *,
    output_topic: str | None,
    dlq_topic: str | None,
    window: TimeWindow | None,
    from_offsets: Mapping[int, int] | None,
    to_offsets: Mapping[int, int] | None,
    job: str | None,
    group: str | None,
    max_receipts_per_s: float | None,
    progress: bool,
) -> BackfillRequest:
    """The job as the command line asked for it, with defaults filled in and the live group protected."""
    spec = JobSpec(
        input_topic=settings.input_topic,
        output_topic=output_topic or settings.output_topic,
        dlq_topic=dlq_topic or settings.dlq_topic,
        window=window,
        from_offsets=from_offsets,
        to_offsets=to_offsets,
    )
    job = check_job_name(job) if job else spec.fingerprint()
    group = group or default_group(settings.group_id, job)
    if group == settings.group_id:
        raise BackfillRefused(
            f"--group {group} is the live worker's group (ENRICHER_GROUP_ID): a backfill committing there would move "
            "the live consumer's offsets; leave --group unset or choose another"
        )
    return BackfillRequest(spec=spec, job=job, group=group, max_receipts_per_s=max_receipts_per_s, progress=progress)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``receipt-enricher backfill`` flags (settings such as topics and the model still come from ENRICHER_*)."""
    window = parser.add_argument_group("range: timestamps (from <= record timestamp < to) or offsets per partition")
    window.add_argument("--from", dest="from_time", metavar="ISO8601", help="e.g. 2026-11-30T00:00:00Z")
    window.add_argument("--to", dest="to_time", metavar="ISO8601", help="exclusive")
    window.add_argument(
        "--late-s",
        type=float,
        default=600.0,
        help="read this far past --to in record time, for out-of-order timestamps (default 600)",
    )
    window.add_argument(
        "--from-offsets", metavar="P:O,...", help="first offset per partition; only these partitions are replayed"
    )
    window.add_argument(
        "--to-offsets", metavar="P:O,...", help="exclusive end per partition (default: the end of the log at start)"
    )
    parser.add_argument("--output-topic", help="default ENRICHER_OUTPUT_TOPIC; a backfill topic must exist")
    parser.add_argument("--dlq-topic", help="default ENRICHER_DLQ_TOPIC")
    parser.add_argument("--job", help="job name (default: a fingerprint of the range and topics, so a rerun resumes)")
    parser.add_argument("--group", help="consumer group of the job (default: <ENRICHER_GROUP_ID>.backfill.<job>)")
    parser.add_argument("--max-receipts-per-s", type=float, help="throttle: average receipts per second")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs and the summary only)")


def request_from_args(settings: Settings, args: argparse.Namespace) -> BackfillRequest:
    window = None
    if args.from_time or args.to_time:
        if not (args.from_time and args.to_time):
            raise BackfillRefused("a time range needs both --from and --to")
        window = TimeWindow(parse_time(args.from_time), parse_time(args.to_time), round(args.late_s * 1000))
    return make_request(
        settings,
        output_topic=args.output_topic,
        dlq_topic=args.dlq_topic,
        window=window,
        from_offsets=parse_offsets(args.from_offsets) if args.from_offsets else None,
        to_offsets=parse_offsets(args.to_offsets) if args.to_offsets else None,
        job=args.job,
        group=args.group,
        max_receipts_per_s=args.max_receipts_per_s,
        progress=not args.no_progress,
    )
