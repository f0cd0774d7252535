"""``receipt-enricher``: the worker and the tools around it. Thin: parse, build Settings, call one function."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from pydantic import ValidationError

from app.ops.log_redaction import install_log_redaction
from app.settings import REPO_ROOT, Settings


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="ts=%(asctime)s level=%(levelname)s logger=%(name)s event=%(message)s",
    )
    install_log_redaction()
    # PEFT 0.21 reads transformers 5's deprecated `is_gradient_checkpointing` when it wraps the model: a
    # warning about the libraries' versions, not this service, printed as three raw lines on every start.
    warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)


def build_parser() -> argparse.ArgumentParser:
    """Every command and its flags (tests/test_deploy.py parses the deployment files' commands with it)."""
    parser = argparse.ArgumentParser(prog="receipt-enricher", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("worker", help="run the always-on enrichment worker (settings from ENRICHER_* variables)")
    commands.add_parser(
        "lag-exporter", help="serve the group's consumer lag on /metrics (ENRICHER_METRICS_PORT) without consuming"
    )
    commands.add_parser(
        "create-topics", help="create the input, output, dead-letter, corrections and overrides topics if missing"
    )
    produce = commands.add_parser("produce-samples", help="put sample receipts on the input topic")
    produce.add_argument("--count", type=int, default=20)
    produce.add_argument("--seed", type=int, default=1)
    produce.add_argument("--malformed", type=int, default=0, help="also produce this many malformed messages")
    tail = commands.add_parser("tail", help="print enriched transactions (or dead letters) from the beginning")
    tail.add_argument("--max", type=int, default=20)
    tail.add_argument("--timeout", type=float, default=60.0)
    tail.add_argument("--dlq", action="store_true", help="read the dead-letter topic instead")
    backfill = commands.add_parser(
        "backfill", help="replay a time or offset range of the input topic into an output topic (bounded, resumable)"
    )
    from app.backfill.plan import add_arguments as add_backfill_arguments

    add_backfill_arguments(backfill)
    corrections = commands.add_parser("corrections", help="the corrections flow (docs/corrections.md)")
    corrections_commands = corrections.add_subparsers(dest="corrections_command", required=True)
    export = corrections_commands.add_parser(
        "export", help="write the active overrides as labelled rows in training/labels.py's format (TSV)"
    )
    export.add_argument("--out", type=Path, required=True, help="the TSV to write")
    export.add_argument(
        "--labels",
        type=Path,
        default=REPO_ROOT / "training" / "data" / "labels" / "items.tsv",
        help="labelled rows that complete partial overrides (fields nobody corrected)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    try:
        settings = Settings()
    except ValidationError as error:
        # The messages name the variable and, for files, the path; input values are hidden (a misplaced secret).
        print(f"receipt-enricher: invalid settings: {error}", file=sys.stderr)
        return 2
    _configure_logging(settings.log_level)
    from app.kafka.broker_access import BrokerAccessDenied, check_broker_access

    try:
        check_broker_access(settings)
    except BrokerAccessDenied as error:
        print(f"receipt-enricher: {error}", file=sys.stderr)
        return 3
    if args.command == "worker":
        from app.ops.health import MetricsPortInUse
        from app.worker import run_worker  # imports torch: only the worker pays for it

        try:
            run_worker(settings)
        except MetricsPortInUse as error:
            print(f"receipt-enricher worker: {error.strerror}", file=sys.stderr)
            return 2
    elif args.command == "lag-exporter":
        from app.kafka.consumer_lag import serve_lag
        from app.ops.health import MetricsPortInUse

        try:
            serve_lag(settings)
        except MetricsPortInUse as error:
            print(f"receipt-enricher lag-exporter: {error.strerror}", file=sys.stderr)
            return 2
    elif args.command == "create-topics":
        from app.kafka.topics import create_corrections_topics, create_service_topics

        create_service_topics(
            settings.admin_config(),
            input_topic=settings.input_topic,
            output_topic=settings.output_topic,
            dlq_topic=settings.dlq_topic,
            partitions=settings.topic_partitions,
        )
        create_corrections_topics(
            settings.admin_config(),
            corrections_topic=settings.corrections_topic,
            overrides_topic=settings.overrides_topic,
            group_id=settings.group_id,
            partitions=settings.topic_partitions,
        )
    elif args.command == "produce-samples":
        from app.tools.console import produce_samples

        sent = produce_samples(settings.producer_config(), settings.input_topic, args.count, args.seed, args.malformed)
        print(f"produced {sent} messages to {settings.input_topic}")
    elif args.command == "tail":
        from app.tools.console import consume, render_dead_letter, render_transaction

        topic = settings.dlq_topic if args.dlq else settings.output_topic
        render = render_dead_letter if args.dlq else render_transaction
        shown = 0
        for value in consume(settings, topic, args.max, args.timeout):
            print(render(value))
            shown += 1
        print(f"-- {shown} message(s) from {topic}")
    elif args.command == "backfill":
        from app.backfill.run import BackfillFailed, run_backfill
        from app.backfill.plan import EXIT_INTERRUPTED, BackfillRefused, request_from_args
        from app.kafka.overrides_reader import OverridesNotLoaded

        try:
            summary = run_backfill(settings, request_from_args(settings, args))
        except (BackfillRefused, OverridesNotLoaded) as error:
            print(f"receipt-enricher backfill: refused: {error}", file=sys.stderr)
            return 2
        except BackfillFailed as error:
            print(f"receipt-enricher backfill: failed: {error}; committed work stays, rerun to resume", file=sys.stderr)
            return 1
        print(summary.line())
        if summary.interrupted:
            print("receipt-enricher backfill: interrupted; run the same command again to resume", file=sys.stderr)
            return EXIT_INTERRUPTED
    elif args.command == "corrections":
        from app.kafka.overrides_reader import OverridesNotLoaded
        from app.tools.corrections import export_corrections
        from training.labels import LabelError

        try:
            print(export_corrections(settings, args.out, args.labels))
        except (OverridesNotLoaded, LabelError) as error:
            print(f"receipt-enricher corrections export: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
