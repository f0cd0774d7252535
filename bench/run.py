"""Throughput, cache and latency benchmark: ``python -m bench.run [--size full|small] [--out PATH]``.

Writes bench/results/<size>.json (the machine, the date, the load average during each section):
- cache: hit ratio and model calls per 1,000 items on a Zipf-distributed item stream, cold and warm,
  and how the hit ratio moves with the Zipf exponent;
- model: items/s of the default model at batch sizes 1, 8, 32, 64, 128 with the prompt and answer
  padding waste; merged vs unmerged adapter and float32 vs bfloat16 at batch 32; static against
  continuous batching (ENRICHER_CONTINUOUS_BATCHING) in items/s, compute waste and equal answers;
- pipeline: receipts through the real broker and the real worker with a zero-cost enricher, in line
  items/s, next to a raw confluent-kafka consume+produce loop on the same broker in the same run,
  the fill of the batches the enricher was given, the same agent with empty stages (what Faust
  itself allows), and the same pipeline fed by a confluent-kafka consumer instead of Faust; then at
  a realistic model rate: the zero-cost enricher paced to 500 generated items/s (a GPU's rate) with
  the worker's CPU beside it, and the real worker with the real default model on a backlog;
- latency: produce → enriched percentiles with the real worker and model at a stated light load.
Every stream is the same kind: receipts whose items are drawn from a Zipf distribution (below).
Timings depend on the machine and its load; the small size exists so CI keeps this command working.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import itertools
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer, Producer

from app.kafka.topics import create_service_topics
from app.stages.batcher import BatchLimits, plan_batches
from app.stages.cache import AnswerCache, LruStore, cache_key
from app.stages.enrichment import answer_texts
from app.tools.samples import SAMPLE_ITEMS, load_item_names, sample_items_bytes, sample_receipt_event
from harness.kafka_broker import LocalKafka
from model.item_key import item_key
from model.parser import ParsedAnswer
from schemas.events import ItemStatus
from schemas.taxonomy import load_taxonomy

REPO_ROOT = Path(__file__).resolve().parent.parent
SIZES = {
    "full": {"receipts": 40_000, "model_items": 256, "stream": 200_000, "latency_receipts": 240, "paced_receipts": 10_000, "real_model_receipts": 2_000},
    "small": {"receipts": 2_000, "model_items": 32, "stream": 20_000, "latency_receipts": 20, "paced_receipts": 500, "real_model_receipts": 40},
}
# What a model on one GPU serves (docs/performance.md): the rate at which the worker's own CPU is judged.
PACED_MODEL_ITEMS_PER_S = 500.0
# Item popularity: retail purchase counts follow a power law with an exponent near 1 (a few hundred
# staples — bread, milk, bags — make most lines). 1.1 over ~50k distinct strings is a moderate choice:
# the cache section also reports 0.9–1.2, because the hit ratio depends on it more than on anything else.
ZIPF_S = 1.1
ZIPF_SWEEP = (0.9, 1.0, 1.1, 1.2)
VARIANTS_PER_NAME = 200  # distinct item strings: every sample name in 200 size/pack variants
BATCH_SIZES = (1, 8, 32, 64, 128)
TAKE_ITEMS = 512  # items per take in the pure cache simulation (about what a 256-receipt take carries after dedup)
TAKE_SIZES = (256, 1024, 4096)  # the demo default, the production value, and a larger one
PRODUCTION_TAKE = 1024
LATENCY_RATE = 2.0  # receipts per second: light load
WORKER_WAIT_S = 600  # generous: model load and group join on a loaded machine


class ZipfItems:
    """Distinct item strings drawn with Zipf popularity; popularity is independent of the name."""

    def __init__(self, s: float, seed: int = 7) -> None:
        names = load_item_names()
        units = ("", " 1ШТ", " УП", " ПАК", " 0,5КГ", " 1КГ", " 0,9Л", " 1Л", " 2Л", " 400Г")
        distinct = [
            f"{name}{units[variant % len(units)]} {variant // len(units)}" if variant else name
            for name in names
            for variant in range(VARIANTS_PER_NAME)
        ]
        random.Random(seed).shuffle(distinct)
        self.distinct = distinct
        self.s = s
        self._cumulative = list(itertools.accumulate(1 / rank**s for rank in range(1, len(distinct) + 1)))

    def draw(self, rng: random.Random, k: int) -> list[str]:
        total = self._cumulative[-1]
        return [self.distinct[bisect.bisect_left(self._cumulative, rng.random() * total)] for _ in range(k)]


class LoadSampler:
    """Samples the 1-minute load average every few seconds, so each section states the load it ran under."""

    def __init__(self, every_s: float = 2.0) -> None:
        self._every_s = every_s
        self._samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every_s):
            self._samples.append(os.getloadavg()[0])

    @contextmanager
    def section(self, into: dict):
        start = len(self._samples)
        began = time.perf_counter()
        yield
        samples = self._samples[start:] or [os.getloadavg()[0]]
        into["load_average_1m"] = {
            "min": round(min(samples), 2),
            "mean": round(statistics.fmean(samples), 2),
            "max": round(max(samples), 2),
        }
        into["section_seconds"] = round(time.perf_counter() - began, 1)

    def __enter__(self) -> "LoadSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


def _machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), platform.processor())
    memory_kb = next((int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), 0)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.strip()
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "memory_gib": round(memory_kb / 2**20, 1),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "git_commit": commit,
        "note": "shared with other work; see load_average_1m in each section",
    }


def _receipts(zipf: ZipfItems, count: int, seed: int, first_index: int = 0):
    rng = random.Random(seed)
    for index in range(first_index, first_index + count):
        yield sample_receipt_event(rng, zipf.draw(rng, 8), index)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 3)


# --- cache -------------------------------------------------------------------------------------


def _simulate_cache(texts: list[str]) -> dict:
    taxonomy = load_taxonomy()
    generated: list[str] = []
    calls: list[int] = []

    def counting_model(batch):
        calls.append(len(batch))
        generated.extend(batch)
        return [ParsedAnswer(t, "Товар", None, taxonomy.fallback, ItemStatus.OK) for t in batch]

    store = LruStore(100_000)
    cache = AnswerCache("bench", taxonomy, store)
    limits = BatchLimits(64, 10**9, 55)
    phases = {}
    half = len(texts) // 2
    for phase, chunk in (("cold", texts[:half]), ("warm", texts[half:])):
        generated_before, calls_before = len(generated), len(calls)
        hits_before, misses_before = cache.hits_local, cache.misses
        items_in_cache = 0
        for start in range(0, len(chunk), TAKE_ITEMS):
            take = chunk[start : start + TAKE_ITEMS]
            keys = [cache_key(cache.model_version, text) for text in take]
            known = store.get_many(list(set(keys)))
            items_in_cache += sum(key in known for key in keys)
            answer_texts(take, cache, lambda ts: [12] * len(ts), limits, counting_model, taxonomy)
        items_generated = len(generated) - generated_before
        phases[phase] = {
            "items": len(chunk),
            "answered_without_model": round(1 - items_generated / len(chunk), 3),
            "items_generated_per_1000": round(1000 * items_generated / len(chunk), 1),
            "model_calls_per_1000": round(1000 * (len(calls) - calls_before) / len(chunk), 2),
            # Items whose answer was in the cache before their take; the rest of "answered_without_model"
            # is in-take deduplication (a string first seen in this take, repeated within it).
            "answered_from_cache": round(items_in_cache / len(chunk), 3),
            # The same per distinct item key of a take, as the cache counts its lookups.
            "cache_hit_ratio_of_lookups": round(
                (cache.hits_local - hits_before) / max(1, cache.hits_local - hits_before + cache.misses - misses_before), 3
            ),
        }
    keys = [item_key(text) for text in generated]
    phases["item_keys_generated_twice"] = len(keys) - len(set(keys))
    return phases


def bench_cache(stream: int) -> dict:
    zipf = ZipfItems(ZIPF_S)
    texts = zipf.draw(random.Random(3), stream)
    result = {
        "zipf_s": ZIPF_S,
        "distinct_items": len(zipf.distinct),
        "distinct_in_stream": len(set(texts)),
        "stream_items": stream,
        "lru_entries": 100_000,
        "take_items": TAKE_ITEMS,
        "model_batch_items": 64,
        "cold_means": "the first half of the stream, starting from an empty cache",
        "warm_means": "the second half, with the cache the first half left",
        **_simulate_cache(texts),
    }
    result["zipf_sweep_warm_answered_without_model"] = {
        str(s): _simulate_cache(ZipfItems(s).draw(random.Random(3), stream))["warm"]["answered_without_model"] for s in ZIPF_SWEEP
    }
    return result


# --- model -------------------------------------------------------------------------------------


def _model_run(enricher, generator, names: list[str], batch_size: int, answer_tokens: int) -> dict:
    batches = plan_batches(names, generator.count_tokens(names), BatchLimits(batch_size, 10**9, answer_tokens))
    enricher.enrich(list(batches[0].texts[:2]))  # warm-up: first-call allocations are not throughput
    answer_rows = answer_cells = 0
    started = time.perf_counter()
    for batch in batches:
        texts = list(batch.texts)
        raw = generator.generate([_prompt(t) for t in texts])
        lengths = [n + 1 for n in generator.count_answer_tokens(raw)]  # + the end-of-sequence token
        answer_rows += sum(lengths)
        answer_cells += len(lengths) * max(lengths)
    seconds = time.perf_counter() - started
    prompt_waste = sum(b.padding_waste() * len(b.texts) for b in batches) / len(names)
    return {
        "items": len(names),
        "batches": len(batches),
        "items_per_s": round(len(names) / seconds, 1),
        "seconds_per_batch": round(seconds / len(batches), 3),
        "prompt_padding_waste": round(prompt_waste, 3),
        "answer_padding_waste": round(1 - answer_rows / answer_cells, 3),
    }


def _take_padding(generator, takes: int = 8, receipts_per_take: int = 256) -> dict:
    """Padding and fill of the batches the planner cuts from whole takes (cold cache), at the default limits.

    This is what the service pays: a take's misses sorted by length and cut at 64 items / 8,192 padded tokens.
    """
    from app.stages.enrichment import plan_answers

    limits = BatchLimits(64, 8192, generator.max_new_tokens)
    stream = _receipts(ZipfItems(ZIPF_S), takes * receipts_per_take, seed=9)
    prompt_cells = prompt_tokens = rows = 0
    sizes: list[int] = []
    for _ in range(takes):
        texts = [item.name for _ in range(receipts_per_take) for item in next(stream).receipt.items]
        for batch in plan_answers(texts, None, generator.count_tokens, limits).batches:
            sizes.append(len(batch.texts))
            rows += len(batch.texts)
            prompt_cells += len(batch.texts) * batch.row_tokens
            prompt_tokens += sum(batch.prompt_tokens)
    return {
        "takes": takes,
        "receipts_per_take": receipts_per_take,
        "batch_max_items": 64,
        "batch_max_tokens": 8192,
        "batches": len(sizes),
        "batch_fill_mean": round(statistics.fmean(sizes) / 64, 3),
        "prompt_padding_waste": round(1 - prompt_tokens / prompt_cells, 3),
    }


def _fed_token_run(loaded, generator, names: list[str], call_size: int) -> tuple[dict, list[str]]:
    """items/s and compute waste of one generator: the share of token positions fed to the model that were
    padding or steps of rows that had already ended. Counted by a hook on the base model's forward; useful
    positions are each row's prompt tokens plus its generated tokens (the end token included) minus one,
    the generated count taken from the decoded answer re-tokenized."""
    model = loaded.model.get_base_model() if hasattr(loaded.model, "get_base_model") else loaded.model
    fed = [0]

    def count(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        if ids is not None:
            fed[0] += ids.numel()

    generator.generate([_prompt(t) for t in names[:2]])  # warm-up (and the continuous manager's start)
    handle = model.register_forward_pre_hook(count, with_kwargs=True)
    answers: list[str] = []
    try:
        started = time.perf_counter()
        for start in range(0, len(names), call_size):
            answers += generator.generate([_prompt(t) for t in names[start : start + call_size]])
        seconds = time.perf_counter() - started
    finally:
        handle.remove()
    prompt_tokens = generator.count_tokens(names)
    generated = [min(n + 1, loaded.max_new_tokens) for n in generator.count_answer_tokens(answers)]
    useful = sum(p + g - 1 for p, g in zip(prompt_tokens, generated))
    return {
        "items": len(names),
        "items_per_s": round(len(names) / seconds, 1),
        "fed_token_positions": fed[0],
        "useful_token_positions": useful,
        "compute_waste": round(1 - useful / fed[0], 3),
    }, answers


def _continuous_batching(loaded, names: list[str]) -> dict:
    """Static batches against transformers' continuous batching, same prompts, same calls of N prompts."""
    from model.continuous_generation import ContinuousGenerator
    from model.generation import BatchGenerator

    result: dict = {}
    for size in (32, 64):
        # Unconstrained, like the continuous generator, so the answers can be compared.
        static, static_answers = _fed_token_run(loaded, BatchGenerator(loaded, constrained=False), names, size)
        with ContinuousGenerator(loaded, max_concurrent=size) as continuous_generator:
            continuous, continuous_answers = _fed_token_run(loaded, continuous_generator, names, size)
        continuous["answers_equal_to_static"] = sum(a == b for a, b in zip(static_answers, continuous_answers))
        result[f"calls_of_{size}"] = {"static": static, "continuous": continuous}
    return result


def _prompt(text: str) -> str:
    from model.prompt import build_prompt

    return build_prompt(text)


def bench_model(items: int) -> dict:
    from model.enricher import Enricher
    from model.generation import BatchGenerator
    from model.loader import ModelSpec, load_model

    models = REPO_ROOT / "models" / "default"
    taxonomy = load_taxonomy()
    # Distinct strings from the same Zipf stream the pipeline sees: what reaches the model after the cache.
    pool = max(items, max(BATCH_SIZES))
    names = list(dict.fromkeys(ZipfItems(ZIPF_S).draw(random.Random(2), pool * 8)))[:pool]

    def load(**options):
        loaded = load_model(ModelSpec(base_path=models / "base", adapter_path=models / "adapter", **options))
        generator = BatchGenerator(loaded)
        return loaded, generator, Enricher(generator, taxonomy, loaded.lexicon, loaded.calibration)

    loaded, generator, enricher = load()
    result: dict = {"device": str(loaded.device), "max_new_tokens": loaded.max_new_tokens, "dtype": "float32", "merged": False}
    for batch_size in BATCH_SIZES:
        # At least one full batch; batch 1 is slow, and a quarter of the items still gives a stable rate.
        sample = names[: max(4, items // 4)] if batch_size == 1 else names[: max(items, batch_size)]
        result[f"batch_{batch_size}"] = _model_run(enricher, generator, sample, batch_size, loaded.max_new_tokens)
    result["takes_at_default_limits"] = _take_padding(generator)
    # The continuous manager may switch the model's attention implementation; its close() restores it.
    result["continuous_batching"] = _continuous_batching(loaded, names[:items])
    del loaded, generator, enricher

    variants = {}
    for label, options in {
        "unmerged_float32": {},
        "merged_float32": {"merge_adapter": True},
        "unmerged_bfloat16": {"compute_dtype": "bfloat16"},
        "merged_bfloat16": {"merge_adapter": True, "compute_dtype": "bfloat16"},
    }.items():
        variant_loaded, variant_generator, variant_enricher = load(**options)
        variants[label] = _model_run(variant_enricher, variant_generator, names[:items], 32, variant_loaded.max_new_tokens)["items_per_s"]
    result["batch_32_items_per_s_by_serving_option"] = variants
    result["gpu"] = "not measured: no GPU on this machine (bf16 and merged serving on CUDA are untested here)"
    return result


# --- pipeline ----------------------------------------------------------------------------------


def _serialized(receipts) -> tuple[list[tuple[bytes, bytes]], list[int]]:
    """(key, value) and line-item count of each receipt, encoded once, so producing is not what the pipeline waits for."""
    messages, items = [], []
    for event in receipts:
        items.append(len(event.receipt.items))
        messages.append((event.client_id.encode(), event.model_dump_json().encode()))
    return messages, items


def _produce(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    for count, (key, value) in enumerate(messages, start=1):
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.1)
        if count % 1000 == 0:
            producer.poll(0)
    if producer.flush(120) != 0:
        raise RuntimeError("bench producer could not deliver every receipt within 120 s")


def _count_messages(
    bootstrap: str, topic: str, expected: int, timeout_s: float, producer: subprocess.Popen | None = None
) -> tuple[int, float, float]:
    """Consume until `expected` messages; return count and the first and last record timestamps (s).

    Stops early when the ``producer`` process has exited: a dead worker must not cost the whole timeout.
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"count-{uuid.uuid4()}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen, first, last = 0, float("inf"), 0.0
    deadline = time.monotonic() + timeout_s
    try:
        while seen < expected and time.monotonic() < deadline and (producer is None or producer.poll() is None):
            for message in consumer.consume(1000, 0.5):
                if message.error():
                    continue
                seen += 1
                stamp = message.timestamp()[1] / 1000
                first, last = min(first, stamp), max(last, stamp)
    finally:
        consumer.close()
    return seen, first, last


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far, all its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (Linux /proc VmHWM)."""
    line = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM:"))
    return round(int(line.split()[1]) / 1024, 1)


def raw_copy_rate(bootstrap: str, source: str, target: str, count: int) -> tuple[float, float]:
    """confluent-kafka alone: consume `count` messages and produce each to another topic, acked, committed.

    Returns messages/s and the CPU seconds this process spent over the whole copy (librdkafka's threads included).
    """
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4()}", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": "lz4", "enable.idempotence": True, "acks": "all"})
    consumer.subscribe([source])
    copied = 0
    started = None
    cpu_before = time.process_time()
    deadline = time.monotonic() + WORKER_WAIT_S
    try:
        while copied < count and time.monotonic() < deadline:
            messages = consumer.consume(1000, 1.0)
            for message in messages:
                if message.error():
                    continue
                started = started or time.perf_counter()
                producer.produce(target, message.value(), message.key())
                copied += 1
            producer.poll(0)
            if messages:
                producer.flush(30)
                consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    if copied < count:
        raise RuntimeError(f"raw copy saw {copied} of {count} messages within {WORKER_WAIT_S} s")
    return count / (time.perf_counter() - started), time.process_time() - cpu_before


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker_env(bootstrap: str, topics: dict[str, str], group: str, state_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ENRICHER_BOOTSTRAP_SERVERS": bootstrap,
        "ENRICHER_INPUT_TOPIC": topics["input"],
        "ENRICHER_OUTPUT_TOPIC": topics["output"],
        "ENRICHER_DLQ_TOPIC": topics["dlq"],
        "ENRICHER_GROUP_ID": group,
        "ENRICHER_LOG_LEVEL": "WARNING",
        "ENRICHER_STATE_DIR": str(state_dir),
        "ENRICHER_METRICS_PORT": str(_free_port()),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def _topics(bootstrap: str, name: str) -> dict[str, str]:
    topics = {"input": f"{name}-in", "output": f"{name}-out", "dlq": f"{name}-dlq"}
    create_service_topics({"bootstrap.servers": bootstrap}, input_topic=topics["input"], output_topic=topics["output"], dlq_topic=topics["dlq"], partitions=6)
    return topics


def _stop(worker: subprocess.Popen) -> int:
    worker.terminate()
    try:
        return worker.wait(60)
    except subprocess.TimeoutExpired:
        worker.kill()
        return worker.wait(10)


def _zero_cost_run(
    bootstrap: str,
    messages: list[tuple[bytes, bytes]],
    take_max_events: int,
    workdir: Path,
    module: str = "bench.zero_cost_worker",
    extra_args: tuple[str, ...] = (),
) -> dict:
    """A warm worker (group joined, first receipt out) gets the whole backlog at once.

    Timed from the start of producing the backlog (under a second of the run) to the last output record,
    so the first take's processing is included, however large the take. ``module`` is a bench worker
    (``--stats`` and ``extra_args`` passed on) or ``app.cli`` (the real worker: ``worker`` is passed).
    """
    label = "real" if module == "app.cli" else module.rsplit(".", 1)[-1]
    run = f"pipe-{uuid.uuid4().hex[:6]}-{label}-take{take_max_events}"
    topics = _topics(bootstrap, run)
    stats_path = workdir / f"{run}_stats.json"
    log_path = workdir / f"{run}.log"
    env = _worker_env(bootstrap, topics, f"bench-{run}", workdir / "faust")
    env["ENRICHER_TAKE_MAX_EVENTS"] = str(take_max_events)
    arguments = ["worker"] if module == "app.cli" else ["--stats", str(stats_path), *extra_args]
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", module, *arguments],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _produce(bootstrap, topics["input"], messages[:1])
            warm, _, _ = _count_messages(bootstrap, topics["output"], 1, timeout_s=WORKER_WAIT_S, producer=worker)
            if warm < 1:
                raise RuntimeError(f"zero-cost worker published nothing within {WORKER_WAIT_S} s; log: {log_path.read_text()[-2000:]}")
            started, cpu_before = time.time(), _cpu_seconds(worker.pid)
            _produce(bootstrap, topics["input"], messages[1:])
            seen, _, last = _count_messages(bootstrap, topics["output"], len(messages), timeout_s=WORKER_WAIT_S, producer=worker)
            alive = worker.poll() is None
            cpu = _cpu_seconds(worker.pid) - cpu_before if alive else None
            peak_rss_mb = _peak_rss_mb(worker.pid) if alive else None
        finally:
            exit_code = _stop(worker)
    receipts = len(messages) - 1
    if seen < len(messages):
        raise RuntimeError(f"zero-cost worker published {seen - 1} of {receipts} receipts; log: {log_path.read_text()[-2000:]}")
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {"batch_sizes": [], "batch_max_items": 1, "cache": {}}
    sizes = stats["batch_sizes"]
    limit = stats["batch_max_items"]
    return {
        "receipts_out": seen - 1,
        "worker_exit_code": exit_code,
        "seconds": round(last - started, 3),
        "receipts_per_s": round(receipts / max(last - started, 1e-3), 1),
        # All the worker's threads, from the backlog's produce until the count saw its last record (a little
        # idle time after the last record is included: an upper bound).
        "cpu_us_per_receipt": round(cpu / receipts * 1e6, 1) if cpu is not None else None,
        # CPU seconds per wall second: the share of the machine the worker took while draining the backlog.
        "worker_cores": round(cpu / max(last - started, 1e-3), 3) if cpu is not None else None,
        "peak_rss_mb": peak_rss_mb,
        "enricher_batches": len(sizes),
        "enricher_items": sum(sizes),
        "batch_max_items": limit,
        "batch_fill_mean": round(statistics.fmean(sizes) / limit, 3) if sizes else None,
        "full_batch_share": round(sum(1 for n in sizes if n == limit) / len(sizes), 3) if sizes else None,
        "cache": stats["cache"],
        "garbage_collections": stats.get("garbage_collections"),
    }


def bench_pipeline(bootstrap: str, receipts: int, paced_receipts: int, real_model_receipts: int, workdir: Path) -> dict:
    # One receipt more: the first one warms each worker up and is not counted.
    messages, item_counts = _serialized(_receipts(ZipfItems(ZIPF_S), receipts + 1, seed=1))
    items = sum(item_counts[1:])
    raw_topics = _topics(bootstrap, f"raw-{uuid.uuid4().hex[:6]}")
    _produce(bootstrap, raw_topics["input"], messages[1:])
    raw_rate, raw_cpu = raw_copy_rate(bootstrap, raw_topics["input"], raw_topics["output"], receipts)
    items_per_receipt = items / receipts
    raw_items_per_s = raw_rate * items_per_receipt

    def measured(take: int, module: str = "bench.zero_cost_worker") -> dict:
        run = _zero_cost_run(bootstrap, messages, take, workdir, module=module)
        run["items_per_s"] = round(run["receipts_per_s"] * items_per_receipt, 1)
        run["ratio_to_raw"] = round(run["items_per_s"] / raw_items_per_s, 3)
        return run

    def at_model_rate(count: int, module: str, extra_args: tuple[str, ...] = ()) -> dict:
        """The first ``count`` receipts of the same stream (the cache starts cold, as in a fresh worker)."""
        run = _zero_cost_run(bootstrap, messages[: count + 1], PRODUCTION_TAKE, workdir, module=module, extra_args=extra_args)
        run["receipts"] = count
        run["items"] = sum(item_counts[1 : count + 1])
        run["items_per_s"] = round(run["receipts_per_s"] * run["items"] / count, 1)
        return run

    by_take = {str(take): measured(take) for take in TAKE_SIZES}
    headline = by_take[str(PRODUCTION_TAKE)]
    passthrough = measured(PRODUCTION_TAKE, "bench.passthrough_worker")
    without_faust = measured(PRODUCTION_TAKE, "bench.confluent_worker")
    paced = at_model_rate(paced_receipts, "bench.zero_cost_worker", ("--model-items-per-s", str(PACED_MODEL_ITEMS_PER_S)))
    paced["model_items_per_s"] = PACED_MODEL_ITEMS_PER_S
    real_model = at_model_rate(real_model_receipts, "app.cli")
    real_model["torch_threads"] = os.environ.get("OMP_NUM_THREADS", "torch default")
    return {
        "receipts": receipts,
        "items": items,
        "raw_confluent_messages_per_s": round(raw_rate, 1),
        "raw_confluent_items_per_s": round(raw_items_per_s, 1),
        "raw_confluent_cpu_us_per_receipt": round(raw_cpu / receipts * 1e6, 1),
        "take_max_events": PRODUCTION_TAKE,
        "pipeline_items_per_s": headline["items_per_s"],
        "ratio_pipeline_to_raw": headline["ratio_to_raw"],
        "passthrough_items_per_s": passthrough["items_per_s"],
        "ratio_passthrough_to_raw": passthrough["ratio_to_raw"],
        "ratio_pipeline_to_passthrough": round(headline["items_per_s"] / passthrough["items_per_s"], 3),
        "passthrough": passthrough,
        "without_faust": without_faust,
        "paced_model_items_per_s": paced["items_per_s"],
        "paced_model": paced,
        "real_model_items_per_s": real_model["items_per_s"],
        "real_model": real_model,
        "batch_fill_mean": headline["batch_fill_mean"],
        "by_take_max_events": by_take,
        "note": (
            "each worker is warm (group joined, one receipt out) before the whole backlog is produced to its input "
            "topic at once (sustained load); its rate runs from the start of that produce to the last output record "
            "timestamp. The raw loop copies the same messages (acks=all, idempotent, committed per batch), timed "
            f"from its first consumed message. Headline figures at ENRICHER_TAKE_MAX_EVENTS={PRODUCTION_TAKE} (deploy/README.md). "
            "passthrough: the same agent, overlap and publisher with empty stages, each receipt's bytes copied "
            "(bench/passthrough_worker.py): the ceiling Faust sets, timed the same way. without_faust: the same "
            "zero-cost pipeline and overlap fed by a confluent-kafka consumer, committed after each take's acks "
            "(bench/confluent_worker.py): a measurement of the alternative, not a product path. cpu_us_per_receipt: "
            "user+system CPU of the worker process (all threads) over its timed window per receipt; the raw loop's "
            "is this process's CPU over the copy. paced_model: the zero-cost worker whose enricher sleeps as a model serving "
            f"{PACED_MODEL_ITEMS_PER_S:g} generated items/s would take (cache misses only; hits never reach it), over the first "
            "paced_model.receipts receipts; worker_cores is its CPU seconds per wall second. real_model: the real worker "
            "(receipt-enricher worker) with the default model on the first real_model.receipts receipts, cold cache"
        ),
    }


def bench_latency(bootstrap: str, receipts: int, workdir: Path) -> dict:
    topics = _topics(bootstrap, f"lat-{uuid.uuid4().hex[:6]}")
    log_path = workdir / "latency_worker.log"
    zipf = ZipfItems(ZIPF_S)
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            cwd=REPO_ROOT,
            env=_worker_env(bootstrap, topics, f"bench-latency-{uuid.uuid4().hex[:6]}", workdir / "faust"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lat-{uuid.uuid4()}", "auto.offset.reset": "earliest"})
            consumer.subscribe([topics["output"]])
            producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
            # Steady state first: one receipt must come out (model loaded, partitions assigned).
            warm_up = next(_receipts(zipf, 1, seed=40, first_index=10**6))
            producer.produce(topics["input"], warm_up.model_dump_json().encode(), warm_up.client_id.encode())
            producer.flush(10)
            deadline = time.monotonic() + WORKER_WAIT_S
            warmed = False
            while not warmed and time.monotonic() < deadline and worker.poll() is None:
                warmed = any(not m.error() for m in consumer.consume(10, 0.5))
            if not warmed:
                raise RuntimeError(f"the worker published nothing within {WORKER_WAIT_S} s; log: {log_path.read_text()[-2000:]}")
            sent: dict[str, float] = {}
            items = 0
            for event in _receipts(zipf, receipts, seed=4):
                items += len(event.receipt.items)
                sent[event.event_id] = time.time()
                producer.produce(topics["input"], event.model_dump_json().encode(), event.client_id.encode())
                producer.poll(0)
                time.sleep(1 / LATENCY_RATE)
            producer.flush(10)
            latencies = []
            deadline = time.monotonic() + WORKER_WAIT_S
            while len(latencies) < receipts and time.monotonic() < deadline:
                for message in consumer.consume(100, 0.5):
                    if message.error():
                        continue
                    event_id = json.loads(message.value())["event_id"]
                    if event_id in sent:
                        latencies.append(message.timestamp()[1] / 1000 - sent[event_id])
            consumer.close()
        finally:
            exit_code = _stop(worker)
    if not latencies:
        raise RuntimeError(f"no latency measured; log: {log_path.read_text()[-2000:]}")
    return {
        "receipts": receipts,
        "items": items,
        "measured": len(latencies),
        "worker_exit_code": exit_code,
        "load_receipts_per_s": LATENCY_RATE,
        "load_items_per_s": round(items / receipts * LATENCY_RATE, 1),
        "max_wait_s": 0.5,
        "cache": "starts empty (a fresh worker); items from the Zipf stream",
        "p50_s": _pct(latencies, 0.5),
        "p95_s": _pct(latencies, 0.95),
        "p99_s": _pct(latencies, 0.99),
        "max_s": round(max(latencies), 3),
        "measures": "from the bench's produce call to the output record's timestamp (set by the worker's producer)",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    result: dict = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "size": args.size, "machine": _machine()}
    names_file = sample_items_bytes()
    result["item_source"] = {
        "file": f"app/tools/{SAMPLE_ITEMS}",
        "names": len(load_item_names()),
        "variants_per_name": VARIANTS_PER_NAME,
        "sha256": hashlib.sha256(names_file).hexdigest()[:16],
    }
    started = time.perf_counter()
    with LoadSampler() as load, tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        result["cache"] = {}
        with load.section(result["cache"]):
            result["cache"].update(bench_cache(size["stream"]))
        result["model"] = {}
        with load.section(result["model"]):
            result["model"].update(bench_model(size["model_items"]))
        broker = LocalKafka(workdir / "kafka")
        broker.start()
        try:
            result["pipeline"] = {}
            with load.section(result["pipeline"]):
                result["pipeline"].update(
                    bench_pipeline(broker.bootstrap, size["receipts"], size["paced_receipts"], size["real_model_receipts"], workdir)
                )
            result["latency"] = {}
            with load.section(result["latency"]):
                result["latency"].update(bench_latency(broker.bootstrap, size["latency_receipts"], workdir))
        finally:
            broker.stop()
    latency, model = result["latency"], result["model"]
    batch_s = model["batch_64"]["seconds_per_batch"]
    pipeline, takes = result["pipeline"], model["takes_at_default_limits"]
    result["targets"] = {
        "pipeline_items_per_s_at_least_20000": pipeline["pipeline_items_per_s"] >= 20_000,
        "pipeline_at_least_half_of_raw": pipeline["ratio_pipeline_to_raw"] >= 0.5,
        "pipeline_items_per_s_at_least_20000_by_take_max_events": {
            take: run["items_per_s"] >= 20_000 for take, run in pipeline["by_take_max_events"].items()
        },
        "batch_fill_at_least_90_percent": (pipeline["batch_fill_mean"] or 0) >= 0.9,
        "prompt_padding_waste_under_15_percent": takes["prompt_padding_waste"] < 0.15,
        "compute_waste_under_15_percent_with_continuous_batching": all(
            run["continuous"]["compute_waste"] < 0.15 for run in model["continuous_batching"].values()
        ),
        "warm_cache_answers_at_least_80_percent": result["cache"]["warm"]["answered_from_cache"] >= 0.8,
        "no_item_key_generated_twice": result["cache"]["item_keys_generated_twice"] == 0,
        "p99_bound_s": round(latency["max_wait_s"] + batch_s + 0.1, 3),
        "p99_within_bound": latency["p99_s"] <= latency["max_wait_s"] + batch_s + 0.1,
        "p99_bound_uses": "max_wait_s + seconds_per_batch at batch 64 (the default ENRICHER_BATCH_MAX_ITEMS) + 0.1 s",
    }
    result["total_seconds"] = round(time.perf_counter() - started, 1)
    out = args.out or REPO_ROOT / "bench" / "results" / f"{args.size}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
