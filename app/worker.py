"""Start the always-on worker: load the model, wire the pipeline, run the Faust worker until stopped."""

from __future__ import annotations

import gc
import logging

from app.kafka.agent import create_app, run_app
from app.kafka.consumer_lag import LagPoller
from app.kafka.corrections_agent import add_corrections
from app.kafka.overrides_reader import start_overrides
from app.kafka.publisher import Publisher
from app.kafka.topics import create_corrections_topics
from app.ops.health import Health, HealthServer
from app.ops.metrics import Metrics
from app.settings import Settings
from app.stages.batcher import BatchLimits
from app.stages.cache import AnswerCache, LruStore
from app.stages.overrides import OverridesView
from app.stages.pipeline import NO_METRICS, Pipeline, Topics
from model.enricher import Enricher
from model.generation import BatchGenerator
from model.loader import ModelSpec, load_model
from transformers.utils.logging import disable_progress_bar
from schemas.taxonomy import Taxonomy, load_taxonomy

log = logging.getLogger(__name__)


def build_pipeline(settings: Settings, metrics: Metrics | None = None, overrides: OverridesView | None = None) -> Pipeline:
    # transformers draws a progress bar on stderr while the weights load: raw text in a structured log.
    disable_progress_bar()
    loaded = load_model(
        ModelSpec(
            base_path=settings.model_base_path,
            adapter_path=settings.model_adapter_path,
            device=settings.device,
            quantize_4bit=settings.quantize_4bit,
            compute_dtype=settings.compute_dtype,
            merge_adapter=settings.merge_adapter,
        )
    )
    close_generator = None
    if settings.continuous_batching:
        # Imported only here: transformers' continuous batching pulls in torch._dynamo, ~3 s at every start.
        from model.continuous_generation import ContinuousGenerator

        _log_through_root("ContinuousBatchingLogger", logging.WARNING)

        # The item limit stays the number of rows decoding at once; the planner's batches are fed to it.
        generator = ContinuousGenerator(loaded, max_time_s=settings.model_timeout_s, max_concurrent=settings.batch_max_items)
        # Its manager runs a thread that would keep the process alive after the worker stops.
        close_generator = generator.close
    else:
        generator = BatchGenerator(loaded, max_time_s=settings.model_timeout_s)
    taxonomy = load_taxonomy()
    log.info(
        "model_loaded base=%s adapter=%s version=%s device=%s generator=%s",
        loaded.identity.base_model,
        loaded.identity.adapter,
        loaded.identity.version,
        loaded.device,
        type(generator).__name__,
    )
    enrich = Enricher(generator, taxonomy, loaded.lexicon, loaded.calibration).enrich
    if metrics is not None:
        metrics.model_loaded(
            base_model=loaded.identity.base_model,
            adapter=loaded.identity.adapter or "",
            version=loaded.identity.version,
            device=str(loaded.device),
        )
        metrics.set_batch_limits(settings.batch_max_items, settings.batch_max_tokens)
        enrich = metrics.timed_model(enrich)
    return Pipeline(
        enrich=enrich,
        count_tokens=generator.count_tokens,
        limits=BatchLimits(
            max_items=settings.batch_max_items,
            max_tokens=settings.batch_max_tokens,
            answer_tokens=loaded.max_new_tokens,
        ),
        taxonomy=taxonomy,
        identity=loaded.identity,
        sink=Publisher(settings.producer_config(), settings.produce_timeout_s),
        topics=Topics(output=settings.output_topic, dlq=settings.dlq_topic),
        model_stuck_s=settings.model_stuck_bound_s,
        cache=build_cache(settings, loaded.identity.version, taxonomy),
        thresholds=settings.confidence_thresholds,
        overrides=overrides,
        metrics=metrics if metrics is not None else NO_METRICS,
        on_close=close_generator,
    )


def _log_through_root(name: str, level: int) -> None:
    """Send a library logger's records through the worker's structured format instead of its own handler.

    transformers' continuous batching logs through a handler of its own, in its own line format, at INFO
    (flash-attention advice, cache sizes, thread status): one structured line per event, or none.
    """
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(level)


def build_cache(settings: Settings, model_version: str, taxonomy: Taxonomy) -> AnswerCache:
    shared = None
    if settings.redis_url:
        from app.kafka.redis_store import RedisAnswerStore

        shared = RedisAnswerStore(settings.redis_url, settings.cache_ttl_s)
    return AnswerCache(model_version, taxonomy, LruStore(settings.cache_max_entries), shared)


def freeze_loaded_heap() -> None:
    """Move everything loaded so far (model, tokenizer, taxonomy, libraries) out of the collector's reach.

    It lives as long as the process, yet every full collection walked it again while takes churned
    through short-lived objects; in the zero-cost benchmark collections took about 1.4 s of a 7 s run.
    """
    gc.collect()
    gc.freeze()


def run_worker(settings: Settings) -> None:
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    metrics = Metrics()
    health = Health(metrics=metrics, stall_s=settings.health_stall_s)
    # Up before the model loads: probes see "model loading", and a taken port fails in a second, not after the load.
    server = HealthServer(
        settings.metrics_host, settings.metrics_port, metrics.registry, health.not_live_reasons, health.not_ready_reasons
    ).start()
    lag = LagPoller(settings.admin_config(), settings.group_id, settings.input_topic, metrics.lag, settings.lag_poll_interval_s)
    lag.start()
    try:
        # The worker produces overrides and reads them back, so it makes sure the topics exist (idempotent).
        create_corrections_topics(
            settings.admin_config(),
            corrections_topic=settings.corrections_topic,
            overrides_topic=settings.overrides_topic,
            group_id=settings.group_id,
            partitions=settings.topic_partitions,
        )
        taxonomy = load_taxonomy()
        overrides, reader = start_overrides(settings, taxonomy)
        try:
            metrics.watch_overrides(lambda: len(overrides))
            pipeline = build_pipeline(settings, metrics, overrides)
            freeze_loaded_heap()
            metrics.watch_model(pipeline.model_watch.busy_s, pipeline.model_watch.stuck)
            health.model_ready(pipeline.model_watch.stuck)
            app = create_app(settings, pipeline, health)
            add_corrections(app, settings, taxonomy, metrics)
            try:
                run_app(app, settings.log_level)
            finally:
                pipeline.close()
        finally:
            reader.stop()
    finally:
        lag.stop()
        server.stop()
