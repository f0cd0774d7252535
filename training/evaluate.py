"""Evaluate a model directory on labeled data or on the 45-item receipt-parser benchmark.

    python -m training.evaluate --base B [--adapter A] [--mode adapter|merged|zero-shot|few-shot] \
        (--gold | --data test.jsonl | --labels rows.tsv | --benchmark benchmark_standard.csv | --unlabeled names.csv) \
        [--brand-counts brand_counts.csv] --out reports/NAME
    python -m training.evaluate --compare reports/a.json reports/b.json

Modes: ``adapter`` base + LoRA adapter; ``merged`` a merged model in --base, no adapter; ``zero-shot``
and ``few-shot`` the base prompted with an instruction (and --shots solved examples drawn from
--shots-from, the train split) in front of the serving prompt, no adapter. Every mode runs the
service's own Enricher (model/enricher.py): same prompt, same batched generation, same parser.

``--labels`` scores every row of a labels TSV (training/labels.py's format), such as
``receipt-enricher corrections export``'s: how often the model still disagrees with what people fixed
(1 minus each field's score).

``--gold`` scores the gold split of the real labelled items (training/data/labels) under the
real-receipt rules (training/scoring.py: head noun, brand across scripts, brand precision and
coverage, grounded names), with the dictionary rule (training/rule_baseline.py) scored beside it:
its brands come from ``--brand-counts`` (the VTB Data Fusion Contest 2021 brand labels, ``brand,count``),
else from the receipt-parser brand lists shipped in training/data.

Writes NAME.json and NAME.md, prints the table, the worst category confusions and the worst items.
On the benchmark, Tinkoff's published answers (benchmark_tinkoff_service_predictions.csv beside it)
are scored by the same rule and shown next to the published, hand-graded peer scores.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from app.stages.confidence_gate import DEFAULT_THRESHOLDS, gate
from model.confidence import expected_calibration_error, reliability
from model.parser import ParsedAnswer
from model.prompt import build_prompt
from schemas.events import ItemStatus
from schemas.taxonomy import Taxonomy, load_taxonomy
from training.examples import LabeledExample, read_jsonl
from training.fewshot import fewshot_prefix, select_shots
from training.labels import gold_examples, read_rows
from training.rule_baseline import DictionaryRule, first_noun, read_brand_counts
from training.scoring import (
    CONFIDENCE_FIELDS,
    Gold,
    Prediction,
    benchmark_points,
    benchmark_scores,
    keep_curve,
    per_class,
    real_points,
    real_scores,
    worst_confusions,
)

CATEGORY_MAP_PATH = Path(__file__).with_name("benchmark_category_map.json")
TINKOFF_PREDICTIONS = "benchmark_tinkoff_service_predictions.csv"
# Published by receipt-parser's authors for the same 45 items, graded by hand (+1 right, +0.5 partly right).
PUBLISHED = {
    "Tinkoff receipt service (published, hand-graded)": {"product": 0.86, "brand": 0.67, "category": 0.76},
    "receipt-parser, rule-based (published, hand-graded)": {"product": 0.92, "brand": 0.84, "category": 0.76},
}
TINKOFF_RESCORED = "Tinkoff receipt service (its published answers, this rule)"
FLOOR = "floor: first word as product, no brand, commonest class"
MODES = ("adapter", "merged", "zero-shot", "few-shot")
WORST = 10
TABLE_FIELDS = (
    "parsed", "product", "brand", "brand_when_present", "brand_precision", "brand_coverage",
    "category", "category_macro_f1", "names_grounded", "name_similarity", "items_per_second",
)
SHIPPED_BRAND_LISTS = ("brands_ru.csv", "brands_en.csv")
BENCHMARK_DIR = Path(__file__).resolve().parent / "data" / "receipt-parser-benchmark"
RULE = "dictionary rule: first Cyrillic word, longest listed brand"
NOUN_RULE = "pymorphy3 rule: first noun as written (product only)"


class PromptTooLong(ValueError):
    """A baseline prompt plus the answer budget does not fit the model's context."""


class BenchmarkMismatch(ValueError):
    """The predictions file does not list the benchmark's items in the benchmark's order."""


class PrefixedGenerator:
    """Puts a fixed text in front of every prompt, so the zero/few-shot baseline runs through the service's Enricher unchanged."""

    def __init__(self, generator, prefix: str) -> None:
        self._generator = generator
        self._prefix = prefix

    def generate(self, prompts: Sequence[str]) -> list[str]:
        return self._generator.generate([self._prefix + prompt for prompt in prompts])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_category_maps() -> tuple[dict[str, str], dict[str, str]]:
    """(our taxonomy id → benchmark class, Tinkoff's category → benchmark class)."""
    document = json.loads(CATEGORY_MAP_PATH.read_text(encoding="utf-8"))
    return document["ours"], document["tinkoff"]


def _answer_or_none(value: str) -> str | None:
    """A CSV cell, or None where it holds nothing or a dash (their "no brand" and Tinkoff's "no answer")."""
    value = value.strip()
    return None if value in ("", "-", "—") else value


def load_benchmark(path: Path) -> tuple[list[str], list[Gold]]:
    with path.open(encoding="utf-8", newline="") as source:
        rows = list(csv.DictReader(source))
    raws = [row["Название"].strip() for row in rows]
    golds = [
        Gold(normalized_name=None, product=row["product"].strip(), brand=_answer_or_none(row["brand"]), category=row["category"].strip())
        for row in rows
    ]
    return raws, golds


def load_tinkoff_predictions(path: Path, raws: Sequence[str], tinkoff_map: dict[str, str]) -> list[Prediction]:
    """Tinkoff's answers as predictions in the benchmark's classes; an empty row (the service gave nothing) counts as not parsed."""
    with path.open(encoding="utf-8", newline="") as source:
        rows = list(csv.DictReader(source))
    names = [row["Наименование"].strip() for row in rows]
    if names != list(raws):
        raise BenchmarkMismatch(f"{path} does not list the benchmark's {len(raws)} items in order")
    predictions = []
    for row in rows:
        product = _answer_or_none(row["Продукт"])
        category = row["Категория"].strip()
        predictions.append(
            Prediction(
                normalized_name=product or "",
                product=product,
                brand=_answer_or_none(row["Бренд"]),
                category=tinkoff_map.get(category, ""),
                parsed=bool(product or category),
            )
        )
    return predictions


def floor_predictions(raws: Sequence[str], golds: Sequence[Gold]) -> list[Prediction]:
    """What no model at all scores: the raw string's first word, no brand, the benchmark's commonest class."""
    commonest = Counter(g.category for g in golds).most_common(1)[0][0]
    predictions = []
    for raw in raws:
        words = re.findall(r"[^\W\d_]+", raw.lower())
        first = words[0] if words else ""
        predictions.append(Prediction(normalized_name=first, product=first, brand=None, category=commonest, parsed=True))
    return predictions


def enrich(
    raws: Sequence[str],
    args: argparse.Namespace,
    taxonomy: Taxonomy,
    shots: Sequence[LabeledExample],
) -> tuple[list[ParsedAnswer], float, dict]:
    """Run the model over ``raws`` through the service's Enricher; return answers, items per second and the model identity."""
    from model.enricher import Enricher
    from model.generation import BatchGenerator
    from model.loader import ModelSpec, load_model

    loaded = load_model(ModelSpec(base_path=args.base, adapter_path=args.adapter if args.mode == "adapter" else None))
    generator = BatchGenerator(loaded)
    if args.mode in ("zero-shot", "few-shot"):
        prefix = fewshot_prefix(shots, taxonomy, list_categories=not args.no_category_list)
        context = loaded.model.config.max_position_embeddings
        # The tokenizer directly: BatchGenerator.count_tokens wraps raw names in the serving prompt (and cuts them).
        prompts = [prefix + build_prompt(raw) for raw in raws]
        longest = max((len(ids) for ids in loaded.tokenizer(prompts)["input_ids"]), default=0)
        if longest + loaded.max_new_tokens > context:
            raise PromptTooLong(
                f"the {args.mode} prompt takes up to {longest} tokens and the answer {loaded.max_new_tokens}, "
                f"the model's context is {context}: use --no-category-list or fewer --shots"
            )
        generator = PrefixedGenerator(generator, prefix)
    enricher = Enricher(generator, taxonomy, loaded.lexicon, loaded.calibration)
    answers: list[ParsedAnswer] = []
    started = time.perf_counter()
    for start in range(0, len(raws), args.batch_size):
        answers.extend(enricher.enrich(list(raws[start : start + args.batch_size])))
    seconds = time.perf_counter() - started
    return answers, len(raws) / seconds, loaded.identity.model_dump()


def _prediction(answer: ParsedAnswer, category: str) -> Prediction:
    return Prediction(
        normalized_name=answer.normalized_name,
        product=answer.product,
        brand=answer.brand,
        category=category,
        parsed=answer.status in (ItemStatus.OK, ItemStatus.LOW_CONFIDENCE),
    )


def _item(raw: str, prediction: Prediction, gold: Gold, points: dict[str, float], status: str | None = None) -> dict:
    return {
        "raw": raw,
        "predicted": [prediction.normalized_name, prediction.product, prediction.brand, prediction.category],
        "gold": [gold.normalized_name, gold.product, gold.brand, gold.category],
        "points": {k: round(v, 3) for k, v in points.items()},
        **({"status": status} if status else {}),
    }


def _worst(items: list[dict]) -> list[dict]:
    """Fewest points first; ties broken by raw name so reruns list the same items."""
    return sorted(items, key=lambda item: (sum(item["points"].values()), item["raw"]))[:WORST]


def rule_brands(path: Path | None) -> tuple[list[str], str]:
    """The dictionary rule's brand list and where it came from."""
    if path is not None:
        return read_brand_counts(path), f"{path.name} (count >= 50)"
    brands = []
    for name in SHIPPED_BRAND_LISTS:
        with (BENCHMARK_DIR / name).open(encoding="utf-8", newline="") as source:
            brands += [row[0] for row in csv.reader(source) if row and row[0].strip() and row[0] != "brand"]
    return brands, "receipt-parser brand lists (--brand-counts not given)"


def rule_predictions(raws: Sequence[str], brands: Sequence[str], category: str) -> tuple[list[Prediction], list[Prediction]]:
    """The dictionary rule's and the pymorphy3 rule's answers; neither picks a category, so both say ``category``."""
    rule = DictionaryRule(brands)
    dictionary = [Prediction(raw, rule.product(raw), rule.brand(raw), category, True) for raw in raws]
    nouns = [Prediction(raw, first_noun(raw), None, category, True) for raw in raws]
    return dictionary, nouns


def confidence_report(answers: Sequence[ParsedAnswer], points: Sequence[dict[str, float]]) -> dict | None:
    """Calibration (ECE, reliability bins) and precision/coverage curves of each field, from the ungated answers."""
    confident = [(a, p) for a, p in zip(answers, points) if a.confidence is not None]
    if not confident:
        return None
    report: dict = {"items": len(confident), "ece": {}, "reliability": {}, "curves": {}}
    for name in CONFIDENCE_FIELDS:
        confidences = [getattr(a.confidence, name) for a, _ in confident]
        right = [p[name] == 1.0 for _, p in confident]
        present = [getattr(a, name) is not None if name != "category" else True for a, _ in confident]
        report["ece"][name] = round(expected_calibration_error(confidences, right), 4)
        report["reliability"][name] = reliability(confidences, right)
        report["curves"][name] = keep_curve(confidences, right, present)
    return report


def confidence_markdown(report: dict) -> str:
    lines = ["", f"Confidence ({report['items']} items): expected calibration error "
             + ", ".join(f"{name} {value:.3f}" for name, value in report["ece"].items()), ""]
    lines += ["| threshold | " + " | ".join(f"{n} coverage | {n} precision" for n in report["curves"]) + " |",
              "|---:|" + "---:|---:|" * len(report["curves"])]
    thresholds = [row["threshold"] for row in next(iter(report["curves"].values()))]
    for index, threshold in enumerate(thresholds):
        cells = []
        for curve in report["curves"].values():
            precision = curve[index]["precision"]
            cells += [f"{curve[index]['coverage']:.0%}", "–" if precision is None else f"{precision:.0%}"]
        lines.append(f"| {threshold:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "Reliability (confidence bin: items, mean confidence → share right):"]
    for name, rows in report["reliability"].items():
        cells = [f"[{r['low']:.1f}, {r['high']:.1f}): {r['items']}, {r['confidence']:.2f} → {r['right']:.2f}" for r in rows]
        lines.append(f"- {name}: " + "; ".join(cells))
    return "\n".join(lines) + "\n"


def evaluate_labeled(args: argparse.Namespace, taxonomy: Taxonomy, shots: Sequence[LabeledExample]) -> dict:
    if args.gold:
        examples = gold_examples(read_rows())[: args.limit]
        data_path = Path(__file__).resolve().parent / "data" / "labels" / "items.tsv"
    elif args.labels:
        examples = [row.example() for row in read_rows(args.labels, taxonomy)][: args.limit]
        data_path = args.labels
    else:
        examples = list(read_jsonl(args.data))[: args.limit]
        data_path = args.data
    raws = [e.raw_name for e in examples]
    golds = [Gold(e.normalized_name, e.product, e.brand, e.category) for e in examples]
    ungated, items_per_second, identity = enrich(raws, args, taxonomy, shots)
    # Scored as served: fields under the default thresholds withheld (app/stages/confidence_gate.py).
    answers = [gate(a, DEFAULT_THRESHOLDS, taxonomy) for a in ungated]
    predictions = [_prediction(a, a.category.id) for a in answers]
    items = [
        {**_item(raw, p, g, real_points(p, g), a.status.value), "confidence": asdict(u.confidence) if u.confidence else None}
        for raw, p, g, a, u in zip(raws, predictions, golds, answers, ungated)
    ]
    ungated_points = [real_points(_prediction(a, a.category.id), g) for a, g in zip(ungated, golds)]
    brands, brand_source = rule_brands(args.brand_counts)
    commonest = Counter(g.category for g in golds).most_common(1)[0][0] if golds else taxonomy.fallback.id
    dictionary, nouns = rule_predictions(raws, brands, commonest)
    rule_scores = real_scores(raws, dictionary, golds)
    noun_scores = real_scores(raws, nouns, golds)
    scores = real_scores(raws, predictions, golds)
    return {
        "model": identity,
        "data": {"path": str(data_path), "sha256": _sha256(data_path), **({"split": "gold"} if args.gold else {})},
        "scoring": "real-receipt rules in training/scoring.py (product head noun, brand across scripts)",
        "peers": {
            f"{RULE} [{brand_source}]": {"source": "training.rule_baseline.DictionaryRule", "scores": {
                k: v for k, v in rule_scores.items() if k not in ("category", "category_macro_f1", "names_grounded", "name_similarity", "parsed")}},
            NOUN_RULE: {"source": "training.rule_baseline.first_noun", "scores": {"product": noun_scores["product"]}},
        },
        "scores": {**scores, "items_per_second": round(items_per_second, 1)},
        "thresholds": asdict(DEFAULT_THRESHOLDS),
        "confidence": confidence_report(ungated, ungated_points),
        "statuses": dict(Counter(a.status.value for a in answers)),
        "per_category": per_class([p.category for p in predictions], [g.category for g in golds]),
        "worst_confusions": worst_confusions([p.category for p in predictions], [g.category for g in golds]),
        "worst_examples": _worst(items),
        "examples": items,
    }


def evaluate_benchmark(args: argparse.Namespace, taxonomy: Taxonomy, shots: Sequence[LabeledExample]) -> dict:
    raws, golds = load_benchmark(args.benchmark)
    ours_map, tinkoff_map = load_category_maps()
    unmapped = set(taxonomy.ids) - set(ours_map)
    if unmapped:
        raise KeyError(f"{CATEGORY_MAP_PATH} has no benchmark class for {sorted(unmapped)}")
    answers, items_per_second, identity = enrich(raws, args, taxonomy, shots)
    predictions = [_prediction(a, ours_map[a.category.id]) for a in answers]
    items = [
        {**_item(raw, p, g, benchmark_points(p, g), a.status.value), "our_category": a.category.id}
        for raw, p, g, a in zip(raws, predictions, golds, answers)
    ]
    report = {
        "model": identity,
        "data": {"path": str(args.benchmark), "sha256": _sha256(args.benchmark)},
        "scoring": "benchmark: +1 right, +0.5 partly right, rule in training/scoring.py; categories mapped by training/benchmark_category_map.json",
        "scores": {**benchmark_scores(predictions, golds), "items_per_second": round(items_per_second, 1)},
        "statuses": dict(Counter(a.status.value for a in answers)),
        "worst_confusions": worst_confusions([p.category for p in predictions], [g.category for g in golds]),
        "worst_examples": _worst(items),
        "examples": items,
        "peers": {},
        "published": PUBLISHED,
    }
    tinkoff_path = args.tinkoff or args.benchmark.with_name(TINKOFF_PREDICTIONS)
    if tinkoff_path.exists():
        tinkoff = load_tinkoff_predictions(tinkoff_path, raws, tinkoff_map)
        report["peers"][TINKOFF_RESCORED] = {
            "source": {"path": str(tinkoff_path), "sha256": _sha256(tinkoff_path)},
            "scores": benchmark_scores(tinkoff, golds),
        }
    brands, brand_source = rule_brands(args.brand_counts)
    dictionary, _ = rule_predictions(raws, brands, Counter(g.category for g in golds).most_common(1)[0][0])
    rule = benchmark_scores(dictionary, golds)
    report["peers"][f"{RULE} [{brand_source}]"] = {
        "source": "training.rule_baseline.DictionaryRule", "scores": {k: v for k, v in rule.items() if k not in ("parsed", "category")}
    }
    floor = benchmark_scores(floor_predictions(raws, golds), golds)
    report["peers"][FLOOR] = {"source": "training.evaluate.floor_predictions", "scores": {k: v for k, v in floor.items() if k != "parsed"}}
    return report


def survey_unlabeled(args: argparse.Namespace, taxonomy: Taxonomy, shots: Sequence[LabeledExample]) -> dict:
    """Real items without labels: what share parses, which categories come out, and samples to read."""
    with args.unlabeled.open(encoding="utf-8", newline="") as source:
        names = [row["item_name"] for row in csv.DictReader(source)]
    raws = random.Random(0).sample(names, min(args.limit or 200, len(names)))
    answers, items_per_second, identity = enrich(raws, args, taxonomy, shots)
    statuses = Counter(a.status.value for a in answers)
    return {
        "model": identity,
        "data": {"path": str(args.unlabeled), "sha256": _sha256(args.unlabeled)},
        "scoring": "unlabeled: parse share only",
        "scores": {"items": len(raws), "parsed": statuses.get("ok", 0) / len(raws), "items_per_second": round(items_per_second, 1)},
        "statuses": dict(statuses),
        "with_brand": sum(a.brand is not None for a in answers) / len(raws),
        "categories": dict(Counter(a.category.id for a in answers).most_common()),
        "examples": [
            {"raw": raw, "predicted": [a.normalized_name, a.product, a.brand, a.category.id], "status": a.status.value}
            for raw, a in zip(raws, answers)
        ],
    }


def _cell(field: str, value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.1f}" if field == "items_per_second" else f"{value:.0%}"


def _label(report: dict) -> str:
    return f"{report['name']} ({report['mode']})"


def markdown(reports: list[dict]) -> str:
    """One row per run; on the benchmark also Tinkoff rescored by our rule and the published, hand-graded peers."""
    fields = [f for f in TABLE_FIELDS if any(f in r["scores"] for r in reports)]
    lines = ["| run | " + " | ".join(fields) + " |", "|---|" + "---:|" * len(fields)]
    rows = [(_label(r), r["scores"]) for r in reports]
    for report in reports[:1]:
        rows += [(name, peer["scores"]) for name, peer in report.get("peers", {}).items()]
        rows += list(report.get("published", {}).items())
    for label, scores in rows:
        lines.append(f"| {label} | " + " | ".join(_cell(f, scores.get(f)) for f in fields) + " |")
    return "\n".join(lines) + "\n"


def compare(reports: list[dict]) -> str:
    """Side by side: one column per run, metrics as rows, and the difference when there are two runs."""
    fields = [f for f in TABLE_FIELDS if any(f in r["scores"] for r in reports)]
    header = ["metric", *(_label(r) for r in reports)] + (["Δ (2nd − 1st)"] if len(reports) == 2 else [])
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for field in fields:
        values = [r["scores"].get(field) for r in reports]
        cells = [_cell(field, v) for v in values]
        if len(reports) == 2:
            a, b = values
            if a is None or b is None:
                cells.append("")
            else:
                cells.append(f"{b - a:+.1f}" if field == "items_per_second" else f"{100 * (b - a):+.1f} pt")
        lines.append(f"| {field} | " + " | ".join(cells) + " |")
    notes = []
    if len({r["data"]["sha256"] for r in reports}) > 1:
        notes.append("warning: the runs were evaluated on different data (sha256 differs); compare with care")
    if len({r["scoring"] for r in reports}) > 1:
        notes.append("warning: the runs were scored by different rules")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def _print_findings(report: dict) -> None:
    if report.get("worst_confusions"):
        print("worst category confusions (gold → predicted: count):")
        for gold, predicted, count in report["worst_confusions"]:
            print(f"  {gold} → {predicted}: {count}")
    if report.get("worst_examples"):
        print("worst items (raw | predicted | gold | points):")
        for item in report["worst_examples"]:
            predicted = " / ".join(str(v) for v in item["predicted"][1:])
            gold = " / ".join(str(v) for v in item["gold"][1:])
            print(f"  {item['raw']} | {predicted} | {gold} | {item['points']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, help="base model directory (or a merged model with --mode merged)")
    parser.add_argument("--adapter", type=Path, help="LoRA adapter directory (--mode adapter)")
    parser.add_argument("--mode", choices=MODES, help="default: adapter when --adapter is given, else merged")
    parser.add_argument("--gold", action="store_true", help="the gold split of the real labelled items (training/data/labels)")
    parser.add_argument("--data", type=Path, help="labeled JSONL (a test split), scored like the gold split")
    parser.add_argument("--labels", type=Path, help="a labels TSV, every row scored (e.g. the corrections export)")
    parser.add_argument("--brand-counts", type=Path, help="brand,count CSV for the dictionary rule's brands (count >= 50)")
    parser.add_argument("--benchmark", type=Path, help="receipt-parser's benchmark_standard.csv: benchmark scoring")
    parser.add_argument("--tinkoff", type=Path, help=f"Tinkoff's answers to score alike (default: {TINKOFF_PREDICTIONS} beside --benchmark)")
    parser.add_argument("--unlabeled", type=Path, help="CSV with an item_name column: survey real items without labels")
    parser.add_argument("--shots-from", type=Path, help="labeled JSONL (the train split) the few-shot examples are drawn from")
    parser.add_argument("--shots", type=int, default=3, help="solved examples in a few-shot prompt")
    parser.add_argument("--no-category-list", action="store_true", help="zero/few-shot: leave the category names out of the instruction")
    parser.add_argument("--limit", type=int, help="evaluate the first N items only")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, help="reports/NAME: writes NAME.json and NAME.md")
    parser.add_argument("--compare", type=Path, nargs="+", metavar="REPORT_JSON")
    args = parser.parse_args(argv)
    if args.compare:
        print(compare([json.loads(p.read_text(encoding="utf-8")) for p in args.compare]))
        return
    if not args.base or not args.out or sum(bool(x) for x in (args.gold, args.data, args.labels, args.benchmark, args.unlabeled)) != 1:
        parser.error("--base, --out and exactly one of --gold/--data/--labels/--benchmark/--unlabeled are required")
    args.mode = args.mode or ("adapter" if args.adapter else "merged")
    if args.mode == "adapter" and not args.adapter:
        parser.error("--mode adapter needs --adapter")
    if args.mode != "adapter" and args.adapter:
        parser.error(f"--mode {args.mode} runs without an adapter; drop --adapter")
    if args.mode == "few-shot" and not args.shots_from:
        parser.error("--mode few-shot needs --shots-from (the train split)")

    taxonomy = load_taxonomy()
    shots = select_shots(list(read_jsonl(args.shots_from)), args.shots) if args.mode == "few-shot" else []
    try:
        if args.unlabeled:
            report = survey_unlabeled(args, taxonomy, shots)
        elif args.benchmark:
            report = evaluate_benchmark(args, taxonomy, shots)
        else:
            report = evaluate_labeled(args, taxonomy, shots)
    except (PromptTooLong, BenchmarkMismatch) as error:
        raise SystemExit(f"error: {error}") from None
    report = {
        "name": args.out.name,
        "mode": args.mode,
        "base": str(args.base),
        "adapter": str(args.adapter) if args.adapter else None,
        "shots": [shot.raw_name for shot in shots],
        "category_list_in_prompt": args.mode in ("zero-shot", "few-shot") and not args.no_category_list,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **report,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # Appended, not with_suffix: a run name like "r1.5-bench" must not lose its tail.
    Path(f"{args.out}.json").write_text(json.dumps(report, ensure_ascii=False, indent=2), encoding="utf-8")
    table = markdown([report])
    if report.get("confidence"):
        table += confidence_markdown(report["confidence"])
    Path(f"{args.out}.md").write_text(table, encoding="utf-8")
    print(table)
    _print_findings(report)


if __name__ == "__main__":
    main()
