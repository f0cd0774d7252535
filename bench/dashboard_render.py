"""Draw the Grafana dashboard's panels from a real Prometheus, where no Grafana can run.

    python -m bench.dashboard_render --prometheus http://127.0.0.1:9090 --group receipt-enricher \
        --topic receipts --from 1764570000 --to 1764570600 --out deploy/grafana/receipt-enricher.png
    python -m bench.dashboard_render --run --out deploy/grafana/receipt-enricher.png

Every panel of ``deploy/grafana/receipt-enricher.json`` is queried with ``query_range``, its Grafana
variables substituted, and drawn with matplotlib: a rendering of the same expressions, not a Grafana
screenshot. ``--run`` first makes the data: a real broker, the real worker with the default model,
a real Prometheus scraping it, a backlog of receipts and then waves (with repeats and a few
malformed messages), the worker stopped at 70% of the run while receipts keep arriving and the lag
exporter reports the growing lag.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "receipt-enricher.json"
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
RUN_SUMMARY = REPO_ROOT / "bench" / "results" / "dashboard_render.json"
ZIPF_S = 1.1


@dataclass(frozen=True)
class PanelQuery:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    kind: str
    unit: str
    queries: list[PanelQuery]


def load_panels(variables: dict[str, str], rate_interval: str, path: Path = DASHBOARD) -> list[Panel]:
    """The dashboard's panels with Grafana's variables replaced the way Grafana would."""
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    values = {"__rate_interval": rate_interval, **variables}

    def substitute(expr: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1) or match.group(2)
            if name not in values:
                raise KeyError(f"dashboard variable ${name} has no value (give it in variables)")
            return values[name]

        return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)

    return [
        Panel(
            title=panel["title"],
            kind=panel["type"],
            unit=panel.get("fieldConfig", {}).get("defaults", {}).get("unit", ""),
            queries=[PanelQuery(substitute(t["expr"]), t.get("legendFormat", "")) for t in panel["targets"]],
        )
        for panel in dashboard["panels"]
    ]


def legend(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template) or "value"


def render(
    panels: list[Panel],
    query_range: Callable[[str, float, float, float], list[dict]],
    start: float,
    end: float,
    step_s: float,
    out: Path,
    subtitle: str,
) -> dict[str, dict[str, dict[str, float]]]:
    """Draw the panels into ``out``; return every drawn series' max and last value by panel and legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary: dict[str, dict[str, dict[str, float]]] = {}
    columns = 3
    rows = (len(panels) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(6.2 * columns, 3.4 * rows), squeeze=False)
    figure.patch.set_facecolor("#111217")
    for axis, panel in zip(axes.flat, panels):
        axis.set_facecolor("#181b1f")
        axis.set_title(panel.title, color="#d8d9da", fontsize=11, loc="left")
        axis.tick_params(colors="#8e8e8e", labelsize=8)
        for spine in axis.spines.values():
            spine.set_color("#2c3235")
        if panel.kind == "table":
            _draw_table(axis, panel, query_range, start, end)
            continue
        drawn = 0
        for query in panel.queries:
            for series in query_range(query.expr, start, end, step_s):
                points = [(float(t) - start, float(v)) for t, v in series["values"] if v not in ("NaN", "+Inf", "-Inf")]
                if not points:
                    continue
                xs, ys = zip(*points)
                name = legend(query.legend, series["metric"])
                summary.setdefault(panel.title, {})[name] = {"max": round(max(ys), 3), "last": round(ys[-1], 3)}
                # A series with a few points (a drain that lasted two scrapes) would be invisible as a bare line.
                marker = "o" if len(points) < 5 else None
                axis.plot([x / 60 for x in xs], ys, linewidth=1.4, marker=marker, markersize=3, label=legend(query.legend, series["metric"]))
                drawn += 1
        if drawn:
            axis.legend(fontsize=7, loc="upper right", facecolor="#181b1f", labelcolor="#d8d9da", edgecolor="#2c3235")
        else:
            axis.text(0.5, 0.5, "no data", color="#8e8e8e", ha="center", va="center", transform=axis.transAxes)
        axis.set_xlim(0, (end - start) / 60)
        axis.set_xlabel("minutes", color="#8e8e8e", fontsize=8)
        axis.set_ylabel(_unit_label(panel.unit), color="#8e8e8e", fontsize=8)
        axis.grid(color="#2c3235", linewidth=0.5)
    for axis in list(axes.flat)[len(panels):]:
        axis.set_visible(False)
    figure.suptitle(
        "receipt-enricher dashboard, rendered with matplotlib from Prometheus query_range (not a Grafana screenshot)\n" + subtitle,
        color="#d8d9da",
        fontsize=12,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80, facecolor=figure.get_facecolor())
    plt.close(figure)
    return summary


def _draw_table(axis, panel: Panel, query_range, start: float, end: float) -> None:
    axis.axis("off")
    lines = []
    for query in panel.queries:
        for series in query_range(query.expr, start, end, max((end - start) / 100, 1)):
            lines.append(legend(query.legend, series["metric"]))
    text = "\n".join(sorted(set(lines))) or "no data"
    axis.text(0.02, 0.5, text, color="#d8d9da", fontsize=9, va="center", wrap=True, transform=axis.transAxes)


def _unit_label(unit: str) -> str:
    return {"s": "seconds", "ops": "per second", "percentunit": "share (0-1)", "short": ""}.get(unit, unit)


def demo_run(out: Path, minutes: float) -> None:
    """Make real data (broker, worker, Prometheus, lag exporter) and render it; everything is stopped at the end."""
    from confluent_kafka import Producer

    from app.tools.samples import sample_receipt_event
    from app.kafka.topics import create_service_topics
    from harness.kafka_broker import LocalKafka, free_port
    from harness.prometheus_server import PrometheusServer
    from harness.worker_process import OFFLINE_ENV, WorkerProcess

    model = REPO_ROOT / "models" / "default"
    if not (model / "manifest.json").exists():
        raise SystemExit("no default model in models/default: run `make model` first")
    work = Path(tempfile.mkdtemp(prefix="dashboard-render-"))
    run = uuid.uuid4().hex[:6]
    group, topic = f"receipt-enricher-{run}", f"receipts-{run}"
    broker = LocalKafka(work / "kafka")
    worker_port, lag_port = free_port(), free_port()
    prometheus = PrometheusServer(
        work / "prometheus",
        {"receipt-enricher": [f"127.0.0.1:{worker_port}"], "receipt-enricher-lag": [f"127.0.0.1:{lag_port}"]},
        [ALERTS],
    )
    env = {
        "ENRICHER_BOOTSTRAP_SERVERS": "",
        "ENRICHER_INPUT_TOPIC": topic,
        "ENRICHER_OUTPUT_TOPIC": f"enriched-{run}",
        "ENRICHER_DLQ_TOPIC": f"dlq-{run}",
        "ENRICHER_GROUP_ID": group,
        "ENRICHER_MODEL_BASE_PATH": str(model / "base"),
        "ENRICHER_MODEL_ADAPTER_PATH": str(model / "adapter"),
        "ENRICHER_METRICS_HOST": "127.0.0.1",
        "ENRICHER_METRICS_PORT": str(worker_port),
        "ENRICHER_LAG_POLL_INTERVAL_S": "2",
        "ENRICHER_TAKE_MAX_EVENTS": "16",
    }
    worker = exporter = None
    try:
        env["ENRICHER_BOOTSTRAP_SERVERS"] = broker.start()
        create_service_topics(
            {"bootstrap.servers": env["ENRICHER_BOOTSTRAP_SERVERS"]},
            input_topic=topic,
            output_topic=env["ENRICHER_OUTPUT_TOPIC"],
            dlq_topic=env["ENRICHER_DLQ_TOPIC"],
            partitions=3,
        )
        prometheus.start()
        start = time.time()
        producer = Producer({"bootstrap.servers": env["ENRICHER_BOOTSTRAP_SERVERS"]})
        rng = random.Random(7)
        names = _item_names()
        # Purchases follow a power law (bench/run.py's exponent): staples repeat, so the cache has work.
        weights = [1 / rank**ZIPF_S for rank in range(1, len(names) + 1)]
        index = 0

        def wave(count: int, malformed: int = 0) -> None:
            nonlocal index
            for _ in range(count):
                drawn = rng.choices(names, weights=weights, k=rng.randint(1, 6))
                event = sample_receipt_event(rng, drawn, index, max_items=len(drawn))
                index += 1
                producer.produce(topic, event.model_dump_json().encode(), event.client_id.encode())
            for i in range(malformed):
                producer.produce(topic, b"not json", f"bad-{index}-{i}".encode())
            producer.flush(30)

        # A backlog first (the lag the worker drains while and after its model loads), then a steady stream.
        wave(400, malformed=3)
        worker = WorkerProcess(env, work / "worker.log").start()
        deadline = start + minutes * 60 * 0.7
        while time.time() < deadline:
            time.sleep(10)
            wave(20, malformed=1 if rng.random() < 0.3 else 0)
        worker.stop()
        # The group is stopped: what arrives now is lag that only the lag exporter can report.
        exporter = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "lag-exporter"],
            cwd=REPO_ROOT,
            env={**_environ(), **OFFLINE_ENV, **env, "ENRICHER_METRICS_PORT": str(lag_port)},
            stdout=(work / "exporter.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        stop_at = start + minutes * 60
        while time.time() < stop_at:
            wave(20)
            time.sleep(10)
        end = time.time()
        panels = load_panels({"job": "receipt-enricher", "group": group, "topic": topic, "datasource": "prometheus"}, "30s")
        stamp = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M UTC")
        summary = render(
            panels,
            prometheus.query_range,
            start,
            end,
            5,
            out,
            f"{stamp}, {minutes:g} min on this 2-core CPU machine: default model, Zipf draws of real dfc2021 item names, "
            f"takes of 16, worker stopped at {0.7 * minutes:g} min while receipts keep arriving",
        )
        report = {"started": stamp, "minutes": minutes, "receipts_produced": index, "panels": summary}
        # Not beside the picture: Grafana's provisioning (deploy/compose) loads every JSON in deploy/grafana/.
        RUN_SUMMARY.parent.mkdir(parents=True, exist_ok=True)
        RUN_SUMMARY.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"rendered {len(panels)} panels to {out}, series maxima in {RUN_SUMMARY} (work dir {work})")
    finally:
        if exporter is not None:
            exporter.terminate()
            exporter.wait(30)
        if worker is not None:
            worker.stop()
        prometheus.stop()
        broker.stop()


def _item_names() -> list[str]:
    """The real item strings of the labelled set (training/data/labels): what production traffic looks like."""
    from training.labels import read_rows

    return [row.raw_name for row in read_rows()]


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.dashboard_render", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--run", action="store_true", help="make real data first (broker, worker, Prometheus), then render")
    parser.add_argument("--minutes", type=float, default=6.0, help="length of the --run")
    parser.add_argument("--prometheus", help="render from this Prometheus instead")
    parser.add_argument("--group", default="receipt-enricher")
    parser.add_argument("--topic", default="receipts")
    parser.add_argument("--job", default="receipt-enricher")
    parser.add_argument("--from", dest="start", type=float, help="unix seconds")
    parser.add_argument("--to", dest="end", type=float, help="unix seconds (default now)")
    parser.add_argument("--rate-interval", default="1m")
    args = parser.parse_args(argv)
    if args.run:
        demo_run(args.out, args.minutes)
        return 0
    if not args.prometheus or args.start is None:
        parser.error("give --run, or --prometheus and --from")
    from harness.prometheus_server import PrometheusApi

    server = PrometheusApi(args.prometheus)
    end = args.end or time.time()
    panels = load_panels({"job": args.job, "group": args.group, "topic": args.topic, "datasource": "prometheus"}, args.rate_interval)
    render(panels, server.query_range, args.start, end, max((end - args.start) / 300, 1), args.out, args.prometheus)
    return 0


if __name__ == "__main__":
    sys.exit(main())
