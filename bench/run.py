"""Throughput, cache and latency benchmark: ``python -m bench.run [--size full|small]``.

Writes bench/results/<size>.json. Sections:
- pipeline: receipts through the real broker and the real worker with a zero-cost enricher, in line
  items/s, next to a raw confluent-kafka consume+produce loop on the same broker in the same run;
- model: items/s of the default model at batch sizes 1, 8, 32, 128, and the padding waste;
- cache: hit ratio and model calls per 1,000 items on a Zipf-distributed stream, cold and warm;
- latency: produce → enriched percentiles with the real model at a stated light load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer, Producer

from app.batcher import BatchLimits, plan_batches
from app.cache import AnswerCache, LruStore
from app.enrichment import answer_texts
from app.samples import load_item_names, sample_receipt_event
from app.topics import create_service_topics
from model.parser import ParsedAnswer
from schemas.events import ItemStatus
from schemas.taxonomy import load_taxonomy
from tests.kafka_broker import LocalKafka

REPO_ROOT = Path(__file__).resolve().parent.parent
SIZES = {
    "full": {"receipts": 20_000, "model_items": 512, "stream": 200_000, "latency_receipts": 200},
    "small": {"receipts": 2_000, "model_items": 128, "stream": 20_000, "latency_receipts": 30},
}
# Zipf exponent for the item stream: retail purchase frequencies follow a power law with exponent
# near 1 (a few hundred staples dominate); 1.1 over 50k distinct strings is a moderate, not a
# flattering, choice — a higher exponent would inflate the hit ratio.
ZIPF_S = 1.1
DISTINCT_ITEMS = 50_000


def _produce_receipts(bootstrap: str, topic: str, count: int) -> tuple[int, dict[str, float]]:
    rng = random.Random(1)
    names = load_item_names()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "compression.type": "lz4"})
    items = 0
    produced_at: dict[str, float] = {}
    for index in range(count):
        event = sample_receipt_event(rng, names, index)
        items += len(event.receipt.items)
        produced_at[event.event_id] = time.time()
        producer.produce(topic, event.model_dump_json().encode(), event.client_id.encode())
        if index % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    return items, produced_at


def _count_messages(bootstrap: str, topic: str, expected: int, timeout_s: float) -> tuple[int, float, float]:
    """Consume until `expected` messages; return count, first and last arrival times."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"count-{uuid.uuid4()}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    seen, first, last = 0, 0.0, 0.0
    deadline = time.monotonic() + timeout_s
    while seen < expected and time.monotonic() < deadline:
        for message in consumer.consume(1000, 0.5):
            if message.error():
                continue
            seen += 1
            last = time.time()
            first = first or last
    consumer.close()
    return seen, first, last


def raw_copy_rate(bootstrap: str, source: str, target: str, count: int) -> float:
    """confluent-kafka alone: consume `count` messages and produce each to another topic, acked."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4()}", "auto.offset.reset": "earliest", "enable.auto.commit": False})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": "lz4", "enable.idempotence": True, "acks": "all"})
    consumer.subscribe([source])
    copied = 0
    started = None
    while copied < count:
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
    seconds = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return count / seconds


def _worker_env(bootstrap: str, topics: dict[str, str], group: str) -> dict[str, str]:
    return {
        **os.environ,
        "ENRICHER_BOOTSTRAP_SERVERS": bootstrap,
        "ENRICHER_INPUT_TOPIC": topics["input"],
        "ENRICHER_OUTPUT_TOPIC": topics["output"],
        "ENRICHER_DLQ_TOPIC": topics["dlq"],
        "ENRICHER_GROUP_ID": group,
        "ENRICHER_LOG_LEVEL": "WARNING",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }


def _topics(bootstrap: str, name: str) -> dict[str, str]:
    topics = {"input": f"{name}-in", "output": f"{name}-out", "dlq": f"{name}-dlq"}
    create_service_topics({"bootstrap.servers": bootstrap}, input_topic=topics["input"], output_topic=topics["output"], dlq_topic=topics["dlq"], partitions=6)
    return topics


def bench_pipeline(bootstrap: str, receipts: int) -> dict:
    topics = _topics(bootstrap, f"pipe-{uuid.uuid4().hex[:6]}")
    items, _ = _produce_receipts(bootstrap, topics["input"], receipts)
    raw_rate = raw_copy_rate(bootstrap, topics["input"], f"{topics['input']}-rawcopy", receipts)
    worker = subprocess.Popen([sys.executable, "-m", "bench.zero_cost_worker"], cwd=REPO_ROOT, env=_worker_env(bootstrap, topics, "bench-pipeline"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        seen, first, last = _count_messages(bootstrap, topics["output"], receipts, timeout_s=600)
    finally:
        worker.terminate()
        worker.wait(60)
    seconds = max(last - first, 1e-9)
    items_per_receipt = items / receipts
    pipeline_items_per_s = (seen - 1) * items_per_receipt / seconds
    return {
        "receipts": receipts,
        "items": items,
        "receipts_out": seen,
        "pipeline_receipts_per_s": round((seen - 1) / seconds, 1),
        "pipeline_items_per_s": round(pipeline_items_per_s, 1),
        "raw_confluent_messages_per_s": round(raw_rate, 1),
        "raw_confluent_items_per_s": round(raw_rate * items_per_receipt, 1),
        "ratio_pipeline_to_raw": round(pipeline_items_per_s / (raw_rate * items_per_receipt), 3),
        "note": "pipeline rate measured from the first to the last output record (worker start-up excluded)",
    }


def bench_model(items: int) -> dict:
    from model.enricher import Enricher
    from model.generation import BatchGenerator
    from model.loader import ModelSpec, load_model

    models = REPO_ROOT / "models" / "default"
    loaded = load_model(ModelSpec(base_path=models / "base", adapter_path=models / "adapter"))
    generator = BatchGenerator(loaded)
    enricher = Enricher(generator, load_taxonomy())
    names = random.Random(2).sample(load_item_names(), min(items, len(load_item_names())))
    results = {}
    for batch_size in (1, 8, 32, 128):
        sample = names[: max(batch_size * 2, min(items, 128))] if batch_size > 1 else names[:32]
        batches = plan_batches(sample, generator.count_tokens(sample), BatchLimits(batch_size, 10**9, loaded.max_new_tokens))
        started = time.perf_counter()
        for batch in batches:
            enricher.enrich(list(batch.texts))
        seconds = time.perf_counter() - started
        waste = sum(b.padding_waste() * len(b.texts) for b in batches) / len(sample)
        results[f"batch_{batch_size}"] = {"items": len(sample), "items_per_s": round(len(sample) / seconds, 1), "prompt_padding_waste": round(waste, 3)}
    return {"device": str(loaded.device), "max_new_tokens": loaded.max_new_tokens, **results}


def bench_cache(stream: int) -> dict:
    taxonomy = load_taxonomy()
    rng = random.Random(3)
    weights = [1 / (rank**ZIPF_S) for rank in range(1, DISTINCT_ITEMS + 1)]
    draws = rng.choices(range(DISTINCT_ITEMS), weights=weights, k=stream)
    texts = [f"ТОВАР {i} 1Л" for i in draws]
    calls = []

    def counting_model(batch):
        calls.append(len(batch))
        return [ParsedAnswer(t, "Товар", None, taxonomy.fallback, ItemStatus.OK) for t in batch]

    cache = AnswerCache("bench", taxonomy, LruStore(100_000))
    limits = BatchLimits(64, 10**9, 24)
    phases = {}
    half = len(texts) // 2
    for phase, chunk in (("cold", texts[:half]), ("warm", texts[half:])):
        items_before, calls_before, cache_hits = sum(calls), len(calls), 0
        for start in range(0, len(chunk), 512):  # takes of 512 items
            outcome = answer_texts(chunk[start : start + 512], cache, lambda ts: [6] * len(ts), limits, counting_model, taxonomy)
            cache_hits += outcome.cached_items
        generated = sum(calls) - items_before
        phases[phase] = {
            "items": len(chunk),
            "items_generated_per_1000": round(1000 * generated / len(chunk), 1),
            "generate_calls_per_1000": round(1000 * (len(calls) - calls_before) / len(chunk), 2),
            "answered_without_model": round(1 - generated / len(chunk), 3),
            "cache_hits": cache_hits,
        }
    return {"zipf_s": ZIPF_S, "distinct_items": DISTINCT_ITEMS, "stream": stream, "lru_entries": 100_000, **phases}


def bench_latency(bootstrap: str, receipts: int) -> dict:
    topics = _topics(bootstrap, f"lat-{uuid.uuid4().hex[:6]}")
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], cwd=REPO_ROOT, env=_worker_env(bootstrap, topics, "bench-latency"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(20)  # model load and group join; latency is measured at steady state
        rng = random.Random(4)
        names = load_item_names()
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        sent: dict[str, float] = {}
        rate = 2.0  # receipts per second: light load
        for index in range(receipts):
            event = sample_receipt_event(rng, names, index)
            sent[event.event_id] = time.time()
            producer.produce(topics["input"], event.model_dump_json().encode(), event.client_id.encode())
            producer.flush(10)
            time.sleep(1 / rate)
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"lat-{uuid.uuid4()}", "auto.offset.reset": "earliest"})
        consumer.subscribe([topics["output"]])
        latencies = []
        deadline = time.monotonic() + 120
        while len(latencies) < receipts and time.monotonic() < deadline:
            for message in consumer.consume(100, 0.5):
                if message.error():
                    continue
                event_id = json.loads(message.value())["event_id"]
                _, timestamp = message.timestamp()
                latencies.append(timestamp / 1000 - sent[event_id])
        consumer.close()
    finally:
        worker.terminate()
        worker.wait(60)
    latencies.sort()

    def pct(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 3) if latencies else float("nan")

    return {"receipts": receipts, "load_receipts_per_s": 2.0, "max_wait_s": 0.5, "p50_s": pct(0.5), "p95_s": pct(0.95), "p99_s": pct(0.99), "measured": len(latencies)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    result: dict = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "size": args.size,
    }
    result["cache"] = bench_cache(size["stream"])
    result["model"] = bench_model(size["model_items"])
    with tempfile.TemporaryDirectory() as directory:
        broker = LocalKafka(Path(directory))
        bootstrap = broker.start()
        try:
            result["pipeline"] = bench_pipeline(bootstrap, size["receipts"])
            result["latency"] = bench_latency(bootstrap, size["latency_receipts"])
        finally:
            broker.stop()
    out = args.out or REPO_ROOT / "bench" / "results" / f"{args.size}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
