"""Serving speed of model builds side by side: items/s through the service's Enricher at one batch size.

    python -m bench.model_versions --model models/default --model OTHER_BUILD [--batch 64] [--items 512]

Every model answers the same distinct item names (the bench's Zipf stream of the sample items) through the
serving loader, generator, constraints, lexicon, parser and calibration, in batches of ``--batch``. Runs
alternate between the models (A B A B …) so machine noise falls on both; the result is the ratio of their
medians, measured in one run. Writes ``bench/results/model_versions.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.run import REPO_ROOT, ZIPF_S, ZipfItems, _machine
from model.enricher import Enricher
from model.generation import BatchGenerator
from model.loader import ModelSpec, load_model
from schemas.taxonomy import load_taxonomy


def _enricher(directory: Path) -> tuple[Enricher, str]:
    loaded = load_model(ModelSpec(base_path=directory / "base", adapter_path=directory / "adapter"))
    return Enricher(BatchGenerator(loaded), load_taxonomy(), loaded.lexicon, loaded.calibration), loaded.identity.version


def _items_per_s(enricher: Enricher, names: list[str], batch: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(names), batch):
        enricher.enrich(names[start : start + batch])
    return len(names) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, action="append", required=True, help="a built model directory (base/, adapter/); twice or more")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--items", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "model_versions.json")
    args = parser.parse_args(argv)
    names = list(dict.fromkeys(ZipfItems(ZIPF_S).draw(random.Random(2), args.items * 8)))[: args.items]
    enrichers = [(str(path), *_enricher(path)) for path in args.model]
    for _, enricher, _ in enrichers:
        enricher.enrich(names[:2])  # warm-up: first-call allocations are not throughput
    rates: dict[str, list[float]] = {path: [] for path, _, _ in enrichers}
    for _ in range(args.rounds):
        for path, enricher, _ in enrichers:
            rates[path].append(round(_items_per_s(enricher, names, args.batch), 1))
    first = statistics.median(rates[enrichers[0][0]])
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "batch": args.batch,
        "items": len(names),
        "models": [
            {
                "path": path,
                "version": version,
                "items_per_s_runs": rates[path],
                "items_per_s_median": statistics.median(rates[path]),
                "ratio_to_first": round(statistics.median(rates[path]) / first, 3),
            }
            for path, _, version in enrichers
        ],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
