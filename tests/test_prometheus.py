"""A real Prometheus scraping the real worker: its lag equals Kafka's, every dashboard and alert expression works.

Bounded: about 2–3 minutes here with the default model built (one model load, ~64 receipts, one JVM
run of kafka-consumer-groups per comparison); every wait is a condition with a generous timeout.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Producer

from app.kafka.topics import create_service_topics
from app.tools.samples import load_item_names, sample_receipt_event
from bench.dashboard_render import ALERTS, load_panels, render
from harness.kafka_broker import free_port
from harness.prometheus_server import PrometheusServer, prometheus_binary
from harness.worker_process import OFFLINE_ENV, REPO_ROOT, WorkerProcess

pytestmark = [pytest.mark.integration, pytest.mark.model]

PARTITIONS = 3
KAFKA_LIB = REPO_ROOT / "deploy" / "local" / "kafka" / "lib"


def _wait_for(condition, timeout_s: float, what: str, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def _produce(bootstrap: str, topic: str, receipts: int, malformed: int, seed: int) -> tuple[dict[int, int], int]:
    """Produce; return how many messages each partition got (from the broker's delivery reports) and the line items."""
    rng = random.Random(seed)
    names = load_item_names()
    per_partition: dict[int, int] = {}

    def delivered(error, message) -> None:
        assert error is None, error
        per_partition[message.partition()] = per_partition.get(message.partition(), 0) + 1

    producer = Producer({"bootstrap.servers": bootstrap})
    items = 0
    for index in range(receipts):
        event = sample_receipt_event(rng, names, seed * 10_000 + index)
        items += len(event.receipt.items)
        producer.produce(topic, event.model_dump_json().encode(), event.client_id.encode(), on_delivery=delivered)
    for index in range(malformed):
        producer.produce(topic, b"not json", f"bad-{seed}-{index}".encode(), on_delivery=delivered)
    assert producer.flush(30) == 0
    return per_partition, items


def _consumer_groups_tool(bootstrap: str, group: str, topic: str) -> dict[int, tuple[int | None, int, int | None]]:
    """Kafka's own kafka-consumer-groups --describe: partition → (current offset, log end offset, lag)."""
    result = subprocess.run(
        ["java", "-Xmx256m", "-cp", f"{KAFKA_LIB}/*", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
         "--bootstrap-server", bootstrap, "--describe", "--group", group],
        capture_output=True, text=True, timeout=120, check=True,
    )
    rows = {}
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[0] == group and fields[1] == topic:
            number = lambda text: None if text == "-" else int(text)  # noqa: E731
            rows[int(fields[2])] = (number(fields[3]), int(fields[4]), number(fields[5]))
    return rows


def _prometheus_partitions(prometheus: PrometheusServer, metric: str, job: str, group: str, topic: str) -> dict[int, float]:
    selector = f'{metric}{{job="{job}", topic="{topic}"' + (f', consumergroup="{group}"}}' if "consumergroup" in metric else "}")
    return {int(s["metric"]["partition"]): float(s["value"][1]) for s in prometheus.query(selector)}


def _prometheus_agrees(prometheus, job, group, topic, tool) -> bool:
    lag = _prometheus_partitions(prometheus, "kafka_consumergroup_lag", job, group, topic)
    current = _prometheus_partitions(prometheus, "kafka_consumergroup_current_offset", job, group, topic)
    newest = _prometheus_partitions(prometheus, "kafka_topic_partition_current_offset", job, group, topic)
    return (
        set(lag) == set(tool)
        and all(lag[p] == tool[p][2] and current[p] == tool[p][0] and newest[p] == tool[p][1] for p in tool)
    )


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError):
        return 0


def test_lag_metric_equals_kafka_and_every_dashboard_and_alert_expression_returns_data(kafka_bootstrap, default_model, tmp_path):
    if prometheus_binary() is None:
        pytest.skip("prometheus is not installed (apt-get install -y prometheus); .ci/run installs it")
    for config in ("prometheus.yml", "prometheus-local.yml"):
        check = subprocess.run(["promtool", "check", "config", str(ALERTS.parent / config)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
    check = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    run = uuid.uuid4().hex[:8]
    topic, group = f"receipts-{run}", f"receipt-enricher-{run}"  # the alerts select groups receipt-enricher*
    create_service_topics(
        {"bootstrap.servers": kafka_bootstrap},
        input_topic=topic,
        output_topic=f"enriched-{run}",
        dlq_topic=f"dlq-{run}",
        partitions=PARTITIONS,
    )
    worker_port, exporter_port = free_port(), free_port()
    prometheus = PrometheusServer(
        tmp_path / "prometheus",
        {"receipt-enricher": [f"127.0.0.1:{worker_port}"], "receipt-enricher-lag": [f"127.0.0.1:{exporter_port}"]},
        [ALERTS],
    ).start()
    env = {
        "ENRICHER_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ENRICHER_INPUT_TOPIC": topic,
        "ENRICHER_OUTPUT_TOPIC": f"enriched-{run}",
        "ENRICHER_DLQ_TOPIC": f"dlq-{run}",
        "ENRICHER_CORRECTIONS_TOPIC": f"corrections-{run}",
        "ENRICHER_OVERRIDES_TOPIC": f"overrides-{run}",
        "ENRICHER_GROUP_ID": group,
        "ENRICHER_MODEL_BASE_PATH": str(default_model.base),
        "ENRICHER_MODEL_ADAPTER_PATH": str(default_model.adapter),
        "ENRICHER_METRICS_HOST": "127.0.0.1",
        "ENRICHER_METRICS_PORT": str(worker_port),
        "ENRICHER_LAG_POLL_INTERVAL_S": "1",
        # Small takes: the drain spans several commits, so "time to drain" and rates have points.
        "ENRICHER_TAKE_MAX_EVENTS": "8",
    }
    start = time.time()
    _, items = _produce(kafka_bootstrap, topic, receipts=60, malformed=4, seed=1)
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    exporter = None
    try:
        # 1. The worker drains the topic; at rest its lag (0 everywhere) and offsets equal the tool's.
        _wait_for(lambda: _status(f"http://127.0.0.1:{worker_port}/readyz") == 200 or not worker.running, 300, "readiness")
        assert worker.running, worker.log_text()[-3000:]
        assert _status(f"http://127.0.0.1:{worker_port}/healthz") == 200
        def drained_to_the_end():
            rows = _consumer_groups_tool(kafka_bootstrap, group, topic)
            return rows if len(rows) == PARTITIONS and all(lag == 0 for _, _, lag in rows.values()) else None

        drained = _wait_for(drained_to_the_end, 300, "the worker to commit the end of every partition", interval_s=2)
        assert sum(end for _, end, _ in drained.values()) == 64
        _wait_for(lambda: _prometheus_agrees(prometheus, "receipt-enricher", group, topic, drained), 60, "Prometheus to show lag 0")
        # The stage hooks counted each message and line item once (the takes overlap: no double counts).
        counted = {
            "consumed": 'sum(receipt_enricher_consumer_events_total{job="receipt-enricher"})',
            "enriched": 'receipt_enricher_producer_records_total{job="receipt-enricher", kind="enriched"}',
            "dead_letters": 'receipt_enricher_producer_records_total{job="receipt-enricher", kind="dead_letter"}',
            "invalid_json": 'receipt_enricher_dlq_events_total{job="receipt-enricher", kind="invalid_json"}',
            "items": 'sum(receipt_enricher_enrich_items_total{job="receipt-enricher"})',
            "in_flight": 'receipt_enricher_pipeline_items_in_flight{job="receipt-enricher"}',
            "latencies": 'receipt_enricher_pipeline_end_to_end_latency_seconds_count{job="receipt-enricher"}',
            # Distinct items the model generated vs. planned for it (a plan can lose items to answers that
            # arrived meanwhile from the take before, never gain any).
            "generated": 'receipt_enricher_enrich_items_total{job="receipt-enricher", source="model"}',
            "planned": 'receipt_enricher_model_batch_items_sum{job="receipt-enricher"}',
            "model_calls": 'receipt_enricher_model_batch_duration_seconds_count{job="receipt-enricher"}',
            # No corrections in this run: the corrections series exist, at zero.
            "overrides_active": 'receipt_enricher_corrections_overrides_active{job="receipt-enricher"}',
            "overridden": 'receipt_enricher_enrich_items_total{job="receipt-enricher", source="override"}',
            "corrections_rejected": 'sum(receipt_enricher_corrections_rejected_total{job="receipt-enricher"})',
        }
        values = {name: float(prometheus.query(expr)[0]["value"][1]) for name, expr in counted.items()}
        assert values["consumed"] == 64 and values["latencies"] == 64, values
        assert values["enriched"] == 60 and values["dead_letters"] == 4 and values["invalid_json"] == 4, values
        assert values["items"] == items and values["in_flight"] == 0, values
        assert 0 < values["generated"] <= values["planned"] and values["model_calls"] > 0, values
        assert values["overrides_active"] == values["overridden"] == values["corrections_rejected"] == 0, values
        assert worker.stop() == 0, worker.log_text()[-3000:]

        # 2. The group is stopped and receipts keep coming: a non-zero lag, reported by the lag exporter.
        arrived, _ = _produce(kafka_bootstrap, topic, receipts=30, malformed=0, seed=2)
        exporter = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "lag-exporter"],
            cwd=REPO_ROOT,
            env={**os.environ, **OFFLINE_ENV, **env, "ENRICHER_METRICS_PORT": str(exporter_port)},
            stdout=(tmp_path / "exporter.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        waiting = _consumer_groups_tool(kafka_bootstrap, group, topic)
        assert {p: lag for p, (_, _, lag) in waiting.items() if lag} == arrived
        _wait_for(
            lambda: _prometheus_agrees(prometheus, "receipt-enricher-lag", group, topic, waiting), 90, "Prometheus to show the lag"
        )
        assert _consumer_groups_tool(kafka_bootstrap, group, topic) == waiting  # nothing moved meanwhile

        # 3. The alerts are evaluated by Prometheus: the stopped worker and the dead letters are noticed.
        def alerts_seen() -> set[str]:
            return {a["labels"]["alertname"] for a in prometheus.api("alerts")["alerts"] if a["state"] in ("pending", "firing")}

        _wait_for(lambda: {"ReceiptEnricherWorkerDown", "ReceiptEnricherDeadLetters"} <= alerts_seen(), 120, "the alerts")
        rules = [rule for group_ in prometheus.api("rules")["groups"] for rule in group_["rules"]]
        in_file = [rule["alert"] for group_ in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group_["rules"]]
        assert sorted(rule["name"] for rule in rules) == sorted(in_file)
        assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules]
        for rule in rules:
            prometheus.query(rule["query"])  # raises PrometheusError with Prometheus's message if it does not parse

        # 4. Every expression of every dashboard panel returns data over the run.
        end = time.time()
        panels = load_panels({"job": "receipt-enricher", "group": group, "topic": topic, "datasource": "prometheus"}, "10s")
        empty = [
            (panel.title, query.expr)
            for panel in panels
            for query in panel.queries
            if not prometheus.query_range(query.expr, start, end, 2)
        ]
        assert not empty, empty
        render(panels, prometheus.query_range, start, end, 2, tmp_path / "dashboard.png", f"test run {run}")
        assert (tmp_path / "dashboard.png").stat().st_size > 20_000
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(30)
        worker.stop()
        prometheus.stop()

