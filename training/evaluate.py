"""Evaluate a model directory on labeled data or on the 45-item receipt-parser benchmark.

    python -m training.evaluate --base B [--adapter A] [--mode adapter|zero-shot|few-shot] \
        (--data test.jsonl | --benchmark benchmark_standard.csv) --out reports/NAME [--limit N]
    python -m training.evaluate --compare reports/a.json reports/b.json

Writes NAME.json and NAME.md, prints the table and the worst confusions. Parsing is the service's
own (model.parser.parse_answer); ``merged`` models are evaluated by passing no adapter.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from collections import Counter
from pathlib import Path

from model.generation import BatchGenerator
from model.loader import ModelSpec, load_model
from model.parser import ParsedAnswer, parse_answer
from model.prompt import build_prompt
from schemas.events import ItemStatus
from schemas.taxonomy import load_taxonomy
from training.examples import LabeledExample, read_jsonl
from training.fewshot import fewshot_prompt
from training.scoring import Gold, Prediction, benchmark_scores, exact_scores, worst_confusions

CATEGORY_MAP_PATH = Path(__file__).with_name("benchmark_category_map.json")
# Published on the same 45 items by receipt-parser's authors (+1 right, +0.5 partly right).
PUBLISHED = {
    "Tinkoff receipt service (published)": {"product": 0.86, "brand": 0.67, "category": 0.76},
    "receipt-parser, rule-based (published)": {"product": 0.92, "brand": 0.84, "category": 0.76},
}
FEW_SHOTS = 3
BATCH = 32


def load_benchmark(path: Path) -> tuple[list[str], list[Gold]]:
    with path.open(encoding="utf-8", newline="") as source:
        rows = list(csv.DictReader(source))
    raws = [row["Название"].strip() for row in rows]
    golds = [
        Gold(
            normalized_name=None,
            product=row["product"].strip(),
            brand=None if row["brand"].strip() in ("", "-") else row["brand"].strip(),
            category=row["category"].strip(),
        )
        for row in rows
    ]
    return raws, golds


def predict(raws: list[str], base: Path, adapter: Path | None, mode: str, shots: list[LabeledExample]) -> tuple[list[ParsedAnswer], float]:
    taxonomy = load_taxonomy()
    loaded = load_model(ModelSpec(base_path=base, adapter_path=adapter if mode == "adapter" else None))
    generator = BatchGenerator(loaded)
    prompts = [
        build_prompt(raw) if mode in ("adapter", "merged") else fewshot_prompt(raw, shots if mode == "few-shot" else [], taxonomy)
        for raw in raws
    ]
    started = time.perf_counter()
    answers: list[str] = []
    for start in range(0, len(prompts), BATCH):
        answers.extend(generator.generate(prompts[start : start + BATCH]))
    seconds = time.perf_counter() - started
    return [parse_answer(answer, raw, taxonomy) for answer, raw in zip(answers, raws)], len(raws) / seconds


def _prediction(answer: ParsedAnswer, category: str) -> Prediction:
    return Prediction(
        normalized_name=answer.normalized_name,
        product=answer.product,
        brand=answer.brand,
        category=category,
        parsed=answer.status is ItemStatus.OK,
    )


def evaluate(args: argparse.Namespace) -> dict:
    shots: list[LabeledExample] = []
    if args.mode == "few-shot":
        shots = random.Random(0).sample(list(read_jsonl(args.shots_from)), FEW_SHOTS)
    if args.benchmark:
        raws, golds = load_benchmark(args.benchmark)
        answers, items_per_second = predict(raws, args.base, args.adapter, args.mode, shots)
        category_map = json.loads(CATEGORY_MAP_PATH.read_text(encoding="utf-8"))
        predictions = [_prediction(a, category_map[a.category.id]) for a in answers]
        scores = benchmark_scores(predictions, golds)
        scores["parsed"] = sum(p.parsed for p in predictions) / max(1, len(predictions))
        kind = "benchmark (+1 right, +0.5 partly right)"
    else:
        examples = list(read_jsonl(args.data))[: args.limit]
        raws = [e.raw_name for e in examples]
        golds = [Gold(e.normalized_name, e.product, e.brand, e.category) for e in examples]
        answers, items_per_second = predict(raws, args.base, args.adapter, args.mode, shots)
        predictions = [_prediction(a, a.category.id) for a in answers]
        scores = exact_scores(predictions, golds)
        kind = "exact match"
    scores["items_per_second"] = round(items_per_second, 1)
    report = {
        "name": args.out.name,
        "mode": args.mode,
        "base": str(args.base),
        "adapter": str(args.adapter) if args.adapter else None,
        "data": str(args.benchmark or args.data),
        "scoring": kind,
        "scores": scores,
        "worst_confusions": worst_confusions([p.category for p in predictions], [g.category for g in golds]),
        "examples": [
            {"raw": raw, "predicted": [p.normalized_name, p.product, p.brand, p.category], "gold": [g.normalized_name, g.product, g.brand, g.category]}
            for raw, p, g in zip(raws, predictions, golds)
        ],
    }
    if args.benchmark:
        report["published"] = PUBLISHED
    return report


def survey_unlabeled(args: argparse.Namespace) -> dict:
    """Real items without labels: what share parses, which categories come out, and samples to read."""
    with args.unlabeled.open(encoding="utf-8", newline="") as source:
        names = [row["item_name"] for row in csv.DictReader(source)]
    raws = random.Random(0).sample(names, min(args.limit or 200, len(names)))
    answers, items_per_second = predict(raws, args.base, args.adapter, args.mode, [])
    statuses = Counter(a.status.value for a in answers)
    return {
        "name": args.out.name,
        "mode": args.mode,
        "data": str(args.unlabeled),
        "scores": {"items": len(raws), "parsed": statuses.get("ok", 0) / len(raws), "items_per_second": round(items_per_second, 1)},
        "statuses": dict(statuses),
        "with_brand": sum(a.brand is not None for a in answers) / len(raws),
        "categories": dict(Counter(a.category.id for a in answers).most_common()),
        "examples": [
            {"raw": raw, "predicted": [a.normalized_name, a.product, a.brand, a.category.id, a.status.value]}
            for raw, a in zip(raws, answers)
        ],
    }


def markdown(reports: list[dict]) -> str:
    fields = ["parsed", "product", "brand", "category", "category_macro_f1", "name_similarity", "items_per_second"]
    fields = [f for f in fields if any(f in r["scores"] for r in reports)]
    lines = ["| run | " + " | ".join(fields) + " |", "|---|" + "---|" * len(fields)]
    for report in reports:
        cells = []
        for field in fields:
            value = report["scores"].get(field)
            cells.append("" if value is None else f"{value:.1f}" if field == "items_per_second" else f"{value:.0%}")
        lines.append(f"| {report['name']} ({report['mode']}) | " + " | ".join(cells) + " |")
    for name, scores in (reports[0].get("published") or {}).items():
        lines.append(f"| {name} | | " + " | ".join(f"{scores[f]:.0%}" if f in scores else "" for f in fields[1:]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path)
    parser.add_argument("--adapter", type=Path)
    parser.add_argument("--mode", choices=["adapter", "merged", "zero-shot", "few-shot"], default="adapter")
    parser.add_argument("--data", type=Path)
    parser.add_argument("--benchmark", type=Path)
    parser.add_argument("--unlabeled", type=Path, help="CSV with an item_name column: survey real items without labels")
    parser.add_argument("--shots-from", type=Path, help="labeled JSONL the few-shot examples are drawn from")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--compare", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.compare:
        print(markdown([json.loads(p.read_text(encoding="utf-8")) for p in args.compare]))
        return
    if not args.base or not args.out or not (args.data or args.benchmark or args.unlabeled):
        parser.error("--base, --out and one of --data/--benchmark/--unlabeled are required")
    if args.mode == "few-shot" and not args.shots_from:
        parser.error("--mode few-shot needs --shots-from")
    report = survey_unlabeled(args) if args.unlabeled else evaluate(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    table = markdown([report])
    args.out.with_suffix(".md").write_text(table, encoding="utf-8")
    print(table)
    print("worst category confusions (gold → predicted, count):")
    for gold, predicted, count in report.get("worst_confusions", []):
        print(f"  {gold} → {predicted}: {count}")


if __name__ == "__main__":
    main()
