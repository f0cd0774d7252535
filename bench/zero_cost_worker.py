"""The real worker (Faust agent, pipeline, publisher) with the model replaced by a zero-cost enricher.

Used by bench/run.py to measure pipeline overhead: ``python -m bench.zero_cost_worker`` with the
usual ENRICHER_* settings.
"""

from __future__ import annotations

import logging

import faust

from app.agent import create_app
from app.batcher import BatchLimits
from app.cache import AnswerCache, LruStore
from app.pipeline import Pipeline, Topics
from app.publisher import Publisher
from app.settings import Settings
from model.parser import ParsedAnswer
from schemas.events import ItemStatus, ModelIdentity
from schemas.taxonomy import load_taxonomy


def main() -> None:
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="ts=%(asctime)s level=%(levelname)s logger=%(name)s event=%(message)s")
    taxonomy = load_taxonomy()
    other = taxonomy.fallback

    def zero_cost(texts):
        return [ParsedAnswer(t, "Товар", None, other, ItemStatus.OK) for t in texts]

    pipeline = Pipeline(
        enrich=zero_cost,
        count_tokens=lambda texts: [len(t) // 3 + 4 for t in texts],
        limits=BatchLimits(settings.batch_max_items, settings.batch_max_tokens, answer_tokens=24),
        taxonomy=taxonomy,
        identity=ModelIdentity(base_model="zero-cost", adapter=None, version="bench"),
        publisher=Publisher(settings.producer_config(), settings.produce_timeout_s),
        topics=Topics(output=settings.output_topic, dlq=settings.dlq_topic),
        model_timeout_s=settings.model_timeout_s,
        cache=AnswerCache("bench", taxonomy, LruStore(settings.cache_max_entries)),
    )
    app = create_app(settings, pipeline)
    faust.Worker(app, loglevel=settings.log_level, redirect_stdouts=False, override_logging=False).execute_from_commandline()


if __name__ == "__main__":
    main()
