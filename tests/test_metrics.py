"""Metric bookkeeping, lag arithmetic and the probe endpoints: plain calls, no Kafka, no torch."""

from __future__ import annotations

import socket

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.ops.health import Health, HealthServer, MetricsPortInUse
from app.ops.metrics import LagSnapshot, Metrics, PartitionOffsets, items_by_source
from app.stages.batcher import padded_tokens
from harness.http_probe import http_get
from model.enricher import ModelBatchFailed
from model.parser import ParsedAnswer
from schemas.events import AuthorKind, ItemSource, ItemStatus
from schemas.taxonomy import load_taxonomy

TAXONOMY = load_taxonomy()


def _answer(status: ItemStatus = ItemStatus.OK) -> ParsedAnswer:
    return ParsedAnswer(normalized_name="Сок", product="Сок", brand=None, category=TAXONOMY.fallback, status=status)


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client import generate_latest

    found = {}
    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_items_by_source_counts_repeats_as_answered_without_the_model_and_failures_as_fallback():
    texts = ["a", "a", "b", "c", "d", "d", "e"]
    answers = {"a": _answer(), "b": _answer(), "c": _answer(), "d": _answer(ItemStatus.MODEL_ERROR), "e": _answer()}
    sources = {"a": ItemSource.MODEL, "b": ItemSource.MODEL, "c": ItemSource.CACHE, "d": ItemSource.MODEL, "e": ItemSource.OVERRIDE}
    # The model generated "a" and "b"; "c" came from the cache; "d" failed; an override answered "e".
    assert items_by_source(texts, answers, sources, generated=2) == {"model": 2, "cache": 2, "override": 1, "fallback": 2}


def test_items_by_source_never_counts_more_model_items_than_line_items():
    counted = items_by_source(["a"], {"a": _answer()}, {"a": ItemSource.MODEL}, generated=3)
    assert counted == {"model": 1, "cache": 0, "override": 0, "fallback": 0}


@pytest.mark.parametrize(
    ("oldest", "newest", "committed", "lag"),
    [
        (0, 100, 60, 40),
        (0, 100, 100, 0),
        (0, 100, None, 100),  # never committed: the group starts at the oldest offset
        (30, 100, None, 70),  # ... which retention may have moved
        (50, 100, 20, 50),  # committed offset deleted by retention: the reset goes to the oldest
        (0, 0, None, 0),
    ],
)
def test_partition_lag_is_what_the_group_still_has_to_read(oldest, newest, committed, lag):
    assert PartitionOffsets("receipts", 0, oldest, newest, committed).lag == lag


def test_lag_is_exposed_under_kafka_exporter_names_with_per_partition_labels():
    metrics = Metrics()
    metrics.lag.update(
        LagSnapshot(
            group="enricher",
            partitions=(
                PartitionOffsets("receipts", 0, 0, 120, 100),
                PartitionOffsets("receipts", 1, 0, 80, None),
            ),
            taken_at=1_700_000_000.0,
        )
    )
    samples = _samples(metrics)
    group = (("consumergroup", "enricher"), ("partition", "0"), ("topic", "receipts"))
    assert samples[("kafka_consumergroup_lag", group)] == 20
    assert samples[("kafka_consumergroup_current_offset", group)] == 100
    assert samples[("kafka_consumergroup_current_offset", (("consumergroup", "enricher"), ("partition", "1"), ("topic", "receipts")))] == -1
    assert samples[("kafka_topic_partition_current_offset", (("partition", "0"), ("topic", "receipts")))] == 120
    assert samples[("kafka_consumergroup_lag_sum", (("consumergroup", "enricher"), ("topic", "receipts")))] == 20 + 80
    assert samples[("receipt_enricher_lag_last_poll_timestamp_seconds", ())] == 1_700_000_000.0


def test_no_lag_series_before_the_first_successful_poll_but_failures_are_counted():
    metrics = Metrics()
    metrics.lag.failed()
    samples = _samples(metrics)
    assert samples[("receipt_enricher_lag_poll_errors_total", ())] == 1
    assert not [name for name, _ in samples if name.startswith("kafka_")]


def test_a_published_take_is_counted_by_kind_source_status_and_latency():
    metrics = Metrics()
    metrics.take_started(3)
    assert _samples(metrics)[("receipt_enricher_pipeline_items_in_flight", ())] == 3
    metrics.dead_letter("invalid_json")
    metrics.take_published(
        input_topic="receipts",
        timestamps_ms=[1_000_000, 1_002_000, None],
        texts=["a", "a", "b"],
        answers={"a": _answer(), "b": _answer(ItemStatus.MALFORMED_ANSWER)},
        sources={"a": ItemSource.MODEL, "b": ItemSource.MODEL},
        generated=2,
        enriched=2,
        dead_letters=1,
        published_at=1_010.0,
    )
    samples = _samples(metrics)
    assert samples[("receipt_enricher_consumer_events_total", (("topic", "receipts"),))] == 3
    assert samples[("receipt_enricher_producer_records_total", (("kind", "enriched"),))] == 2
    assert samples[("receipt_enricher_producer_records_total", (("kind", "dead_letter"),))] == 1
    assert samples[("receipt_enricher_dlq_events_total", (("kind", "invalid_json"),))] == 1
    assert samples[("receipt_enricher_enrich_items_total", (("source", "model"),))] == 2
    assert samples[("receipt_enricher_enrich_items_total", (("source", "cache"),))] == 1
    assert samples[("receipt_enricher_enrich_item_status_total", (("status", "malformed_answer"),))] == 1
    assert samples[("receipt_enricher_pipeline_items_in_flight", ())] == 0
    # 10 s and 8 s after their Kafka timestamps; the record without one is not observed.
    assert samples[("receipt_enricher_pipeline_end_to_end_latency_seconds_count", ())] == 2
    assert samples[("receipt_enricher_pipeline_end_to_end_latency_seconds_sum", ())] == pytest.approx(18.0)


def test_every_model_call_is_timed_also_one_that_fails():
    metrics = Metrics()
    failure = ModelBatchFailed(2, "out of memory")

    def enrich(batch):
        if len(batch) > 1:
            raise failure
        return [_answer() for _ in batch]

    timed = metrics.timed_model(enrich)
    with pytest.raises(ModelBatchFailed):
        timed(["abc", "abcdef"])
    assert timed(["abc"]) == [_answer()]
    samples = _samples(metrics)
    assert samples[("receipt_enricher_model_batch_duration_seconds_count", ())] == 2
    assert samples[("receipt_enricher_model_batch_failures_total", (("kind", failure.kind),))] == 1


def test_planned_batches_are_observed_by_items_and_padded_tokens():
    metrics = Metrics()
    metrics.planned_batch(2, padded_tokens([6, 3], answer_tokens=10))
    metrics.planned_batch(1, padded_tokens([3], answer_tokens=10))
    samples = _samples(metrics)
    assert samples[("receipt_enricher_model_batch_items_count", ())] == 2
    assert samples[("receipt_enricher_model_batch_items_sum", ())] == 3
    assert samples[("receipt_enricher_model_batch_tokens_sum", ())] == 2 * (6 + 10) + 1 * (3 + 10)


def test_ready_only_with_the_model_loaded_and_partitions_assigned():
    metrics = Metrics()
    health = Health(metrics=metrics)
    assert health.not_ready_reasons() == ["model loading", "no input partitions assigned"]
    health.model_ready()
    assert not health.ready
    health.partitions_assigned(frozenset({0, 2}))
    assert health.ready and health.not_ready_reasons() == []
    samples = _samples(metrics)
    assert samples[("receipt_enricher_worker_ready", ())] == 1
    assert samples[("receipt_enricher_consumer_assigned_partitions", ())] == 2
    health.partitions_assigned(frozenset())
    assert health.not_ready_reasons() == ["no input partitions assigned"]
    assert _samples(metrics)[("receipt_enricher_worker_ready", ())] == 0


def test_not_live_when_the_event_loop_stops_beating_or_the_worker_failed():
    health = Health(stall_s=30)
    assert health.not_live_reasons(now=1000.0) == []  # no beat yet: still loading, not stalled
    health.beat(now=1000.0)
    assert health.not_live_reasons(now=1029.0) == []
    assert health.not_live_reasons(now=1031.0) == ["event loop stalled for 31 s"]
    health.beat(now=1031.0)
    health.crashed("DeadLetterRefused")
    assert health.not_live_reasons(now=1032.0) == ["worker failed: DeadLetterRefused"]


def test_endpoints_answer_probes_and_scrapes_over_http():
    metrics = Metrics()
    health = Health(metrics=metrics)
    server = HealthServer("127.0.0.1", 0, metrics.registry, health.not_live_reasons, health.not_ready_reasons).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert http_get(f"{base}/readyz") == (503, "not ready: model loading; no input partitions assigned\n")
        assert http_get(f"{base}/healthz") == (200, "ok\n")
        health.model_ready()
        health.partitions_assigned(frozenset({1}))
        assert http_get(f"{base}/readyz") == (200, "ready\n")
        status, body = http_get(f"{base}/metrics")
        assert status == 200 and "receipt_enricher_worker_ready 1.0" in body
        assert http_get(f"{base}/nothing")[0] == 404
    finally:
        server.stop()


def test_a_taken_metrics_port_fails_with_an_error_naming_the_setting():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        metrics = Metrics()
        with pytest.raises(MetricsPortInUse, match=f"ENRICHER_METRICS_PORT={port} is already in use"):
            HealthServer("127.0.0.1", port, metrics.registry, lambda: [], lambda: [])


def test_known_label_values_start_at_zero_so_the_first_increase_shows_in_rate():
    samples = _samples(Metrics())
    assert samples[("receipt_enricher_dlq_events_total", (("kind", "invalid_json"),))] == 0
    assert samples[("receipt_enricher_enrich_items_total", (("source", "fallback"),))] == 0
    assert samples[("receipt_enricher_producer_records_total", (("kind", "dead_letter"),))] == 0


def test_dashboard_uses_a_prometheus_datasource_variable_and_only_variables_it_defines():
    import json

    from bench.dashboard_render import DASHBOARD, load_panels

    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"])
    panels = load_panels({name: "x" for name in variables}, "1m")
    assert all("$" not in query.expr for panel in panels for query in panel.queries)
    with pytest.raises(KeyError):
        load_panels({}, "1m")


def test_the_model_identity_is_exposed_only_once_the_model_is_loaded():
    metrics = Metrics()
    assert not [name for name, _ in _samples(metrics) if name == "receipt_enricher_model_info"]
    metrics.model_loaded(base_model="llama", adapter="lora", version="v1", device="cpu")
    labels = (("adapter", "lora"), ("base_model", "llama"), ("device", "cpu"), ("version", "v1"))
    assert _samples(metrics)[("receipt_enricher_model_info", labels)] == 1


def test_corrections_are_counted_by_author_and_rejection_kind_and_the_active_overrides_read_at_each_scrape():
    metrics = Metrics()
    samples = _samples(metrics)
    # Known kinds exist at zero before the first correction, so rate() sees the first one.
    assert samples[("receipt_enricher_corrections_rejected_total", (("kind", "unknown_category"),))] == 0
    assert samples[("receipt_enricher_corrections_received_total", (("author", "analyst"),))] == 0
    active = [0]
    metrics.watch_overrides(lambda: active[0])
    metrics.correction_received(AuthorKind.CUSTOMER)
    metrics.correction_received(AuthorKind.CUSTOMER)
    metrics.correction_rejected("invalid_json")
    active[0] = 3
    samples = _samples(metrics)
    assert samples[("receipt_enricher_corrections_received_total", (("author", "customer"),))] == 2
    assert samples[("receipt_enricher_corrections_rejected_total", (("kind", "invalid_json"),))] == 1
    assert samples[("receipt_enricher_corrections_overrides_active", ())] == 3
