"""The real worker (Faust agent, pipeline, cache, publisher) with the model replaced by a zero-cost enricher.

Used by bench/run.py to measure pipeline overhead: ``python -m bench.zero_cost_worker [--stats PATH]
[--model-items-per-s RATE]`` with the usual ENRICHER_* settings. ``--stats`` writes the sizes of the
batches the enricher was given (the batch fill) and the time spent in garbage collection when the
worker stops. ``--model-items-per-s`` paces the enricher like a model serving that many items per
second (it sleeps in the model thread, as a GPU kernel leaves the GIL free): what the rest of the
worker costs at a realistic model rate.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from app.kafka.agent import create_app, run_app
from app.kafka.publisher import Publisher
from app.settings import Settings
from app.stages.batcher import BatchLimits
from app.stages.cache import AnswerCache, LruStore
from app.stages.pipeline import Pipeline, Topics
from app.worker import freeze_loaded_heap
from model.parser import ParsedAnswer
from schemas.events import ItemStatus, ModelIdentity
from schemas.taxonomy import load_taxonomy

# What the default model's manifest says; the zero-cost enricher has no tokenizer, so the planner
# gets a character-based estimate (2.2 characters per token, README) instead.
ANSWER_TOKENS = 55


class ZeroCostRun:
    """The real pipeline with a zero-cost enricher, and what the benchmark reads of it at exit."""

    def __init__(self, settings: Settings, model_items_per_s: float | None = None) -> None:
        self.settings = settings
        taxonomy = load_taxonomy()
        other = taxonomy.fallback
        self.batch_sizes: list[int] = []

        def zero_cost(texts):
            self.batch_sizes.append(len(texts))
            if model_items_per_s:
                time.sleep(len(texts) / model_items_per_s)
            return [ParsedAnswer(t, "Товар", None, other, ItemStatus.OK) for t in texts]

        self.cache = AnswerCache("bench", taxonomy, LruStore(settings.cache_max_entries))
        self.pipeline = Pipeline(
            enrich=zero_cost,
            count_tokens=lambda texts: [int(len(t) / 2.2) + 4 for t in texts],
            limits=BatchLimits(settings.batch_max_items, settings.batch_max_tokens, answer_tokens=ANSWER_TOKENS),
            taxonomy=taxonomy,
            identity=ModelIdentity(base_model="zero-cost", adapter=None, version="bench"),
            sink=Publisher(settings.producer_config(), settings.produce_timeout_s),
            topics=Topics(output=settings.output_topic, dlq=settings.dlq_topic),
            model_stuck_s=settings.model_stuck_bound_s,
            cache=self.cache,
        )
        self._collections = {"count": 0, "seconds": 0.0}
        self._collection_started = 0.0

    def start_counting_collections(self) -> None:
        freeze_loaded_heap()  # as app/worker.py does once the model is loaded
        gc.callbacks.append(self._time_collection)

    def _time_collection(self, phase: str, _info: dict) -> None:
        if phase == "start":
            self._collection_started = time.perf_counter()
        else:
            self._collections["count"] += 1
            self._collections["seconds"] += time.perf_counter() - self._collection_started

    def write_stats(self, path: Path | None) -> None:
        if path is None:
            return
        stats = {
            "batch_sizes": self.batch_sizes,
            "batch_max_items": self.settings.batch_max_items,
            "garbage_collections": {"count": self._collections["count"], "seconds": round(self._collections["seconds"], 3)},
            "cache": {"hits_local": self.cache.hits_local, "hits_shared": self.cache.hits_shared, "misses": self.cache.misses},
        }
        path.write_text(json.dumps(stats), encoding="utf-8")


@dataclass(frozen=True)
class BenchWorkerArgs:
    stats: Path | None
    model_items_per_s: float | None


def parse_bench_args(argv: list[str] | None, description: str) -> BenchWorkerArgs:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--stats", type=Path, help="write the enricher's batch sizes here at exit")
    parser.add_argument("--model-items-per-s", type=float, help="pace the enricher like a model serving this many items/s")
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # nothing below may read the bench's arguments
    return BenchWorkerArgs(stats=args.stats, model_items_per_s=args.model_items_per_s)


def main(argv: list[str] | None = None) -> None:
    args = parse_bench_args(argv, __doc__)
    stats_path = args.stats
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="ts=%(asctime)s level=%(levelname)s logger=%(name)s event=%(message)s")
    run = ZeroCostRun(settings, args.model_items_per_s)
    app = create_app(settings, run.pipeline)
    run.start_counting_collections()
    try:
        run_app(app, settings.log_level)
    finally:
        run.pipeline.close()
        run.write_stats(stats_path)


if __name__ == "__main__":
    main()
