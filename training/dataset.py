"""Build train/validation/test splits from labeled examples.

    python -m training.dataset --input a.jsonl [--input b.csv] [--input corrections.tsv] [--synthetic 20000 --seed 1234] --out DIR \
        [--tokenizer PATH --max-tokens 128]

Deduplicates, splits deterministically by a hash of the normalized raw string (the same item never
sits on both sides), filters examples over a token budget, and writes DIR/{train,validation,test}.jsonl
plus DIR/manifest.json (input and output hashes, counts per category and split, drops, tokenizer stats).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from model.item_key import item_key
from schemas.taxonomy import Taxonomy, load_taxonomy
from training.examples import LabeledExample, read_jsonl, write_jsonl

SPLITS = ("train", "validation", "test")



class DatasetError(ValueError):
    """A labeled example that cannot be used; the message names the file and line."""


def split_of(raw_name: str, validation_share: float = 0.05, test_share: float = 0.05) -> str:
    bucket = int.from_bytes(hashlib.sha256(item_key(raw_name).encode()).digest()[:8], "big") / 2**64
    if bucket < test_share:
        return "test"
    if bucket < test_share + validation_share:
        return "validation"
    return "train"


def deduplicate(examples: Iterable[LabeledExample]) -> list[LabeledExample]:
    """First example per normalized raw string wins."""
    seen: dict[str, LabeledExample] = {}
    for example in examples:
        seen.setdefault(item_key(example.raw_name), example)
    return list(seen.values())


def split_examples(examples: Sequence[LabeledExample], validation_share: float, test_share: float) -> dict[str, list[LabeledExample]]:
    splits: dict[str, list[LabeledExample]] = {name: [] for name in SPLITS}
    for example in examples:
        splits[split_of(example.raw_name, validation_share, test_share)].append(example)
    return splits


def filter_by_tokens(
    examples: Sequence[LabeledExample], count_tokens: Callable[[list[str]], list[int]], max_tokens: int, taxonomy: Taxonomy
) -> tuple[list[LabeledExample], list[int]]:
    """Keep examples whose prompt + answer fit the budget; return them and the dropped lengths."""
    lengths = count_tokens([e.prompt() + e.answer(taxonomy) for e in examples])
    kept = [e for e, n in zip(examples, lengths) if n <= max_tokens]
    return kept, [n for n in lengths if n > max_tokens]


def _brand(value: str | None) -> str | None:
    value = (value or "").strip()
    return None if value in ("", "-") else value


def read_examples(path: Path, taxonomy: Taxonomy) -> list[LabeledExample]:
    """A .csv, a .jsonl, or a labels .tsv (training/labels.py's format, e.g. the corrections export: its train rows)."""
    if path.suffix == ".tsv":
        from training.labels import read_rows, training_examples

        return training_examples(read_rows(path, taxonomy))
    if path.suffix == ".csv":
        with path.open(encoding="utf-8", newline="") as source:
            rows = [
                LabeledExample(
                    raw_name=row["raw_name"],
                    normalized_name=row["normalized_name"],
                    product=row["product"],
                    brand=_brand(row.get("brand")),
                    category=row["category"],
                )
                for row in csv.DictReader(source)
            ]
    else:
        rows = list(read_jsonl(path))
    for number, example in enumerate(rows, start=1):
        if example.category not in taxonomy.ids:
            raise DatasetError(f"{path}:{number}: category {example.category!r} is not in taxonomy {taxonomy.version}")
    return rows


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(
    inputs: list[Path],
    out_dir: Path,
    *,
    synthetic: int = 0,
    seed: int = 1234,
    count_tokens: Callable[[list[str]], list[int]] | None = None,
    max_tokens: int = 128,
    validation_share: float = 0.05,
    test_share: float = 0.05,
    exclude_keys: frozenset[str] = frozenset(),
    augment_train: Callable[[list[LabeledExample]], list[LabeledExample]] | None = None,
) -> dict:
    """Read, deduplicate, drop ``exclude_keys`` (a gold split's item keys), split, write.

    ``augment_train`` adds variants to the train split only, after splitting, so a variant never
    crosses into validation or test.
    """
    taxonomy = load_taxonomy()
    examples: list[LabeledExample] = []
    for path in inputs:
        examples.extend(read_examples(path, taxonomy))
    if synthetic:
        from training.synth import generate

        examples.extend(generate(synthetic, seed))
    excluded = sum(item_key(e.raw_name) in exclude_keys for e in examples)
    examples = [e for e in examples if item_key(e.raw_name) not in exclude_keys]
    unique = deduplicate(examples)
    dropped: list[int] = []
    if count_tokens is not None:
        unique, dropped = filter_by_tokens(unique, count_tokens, max_tokens, taxonomy)
    splits = split_examples(unique, validation_share, test_share)
    augmented = 0
    if augment_train is not None:
        variants = augment_train(splits["train"])
        augmented = len(variants)
        splits["train"] = splits["train"] + variants
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest: dict = {
        "inputs": {Path(p).name: _sha256(p) for p in inputs},
        "excluded_gold_keys": excluded,
        "train_variants_added": augmented,
        "synthetic": {"count": synthetic, "seed": seed} if synthetic else None,
        "examples_read": len(examples),
        "duplicates_removed": len(examples) - len(deduplicate(examples)),
        "over_token_budget": {"max_tokens": max_tokens, "dropped": len(dropped), "longest": max(dropped, default=None)},
        "splits": {},
    }
    for name, rows in splits.items():
        path = out_dir / f"{name}.jsonl"
        write_jsonl(path, rows)
        manifest["splits"][name] = {
            "examples": len(rows),
            "sha256": _sha256(path),
            "per_category": dict(sorted(Counter(r.category for r in rows).items())),
        }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, action="append", default=[])
    parser.add_argument("--synthetic", type=int, default=0, help="add this many synthetic examples")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, help="tokenizer directory for the token budget and efficiency report")
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args(argv)
    count_tokens = None
    tokenizer = None
    if args.tokenizer:
        from model.loader import load_tokenizer

        tokenizer = load_tokenizer(args.tokenizer)
        count_tokens = lambda texts: [len(ids) for ids in tokenizer(texts)["input_ids"]]  # noqa: E731
    from training.labels import gold_examples, read_rows

    # The gold split is the test set of every model: its item keys never enter a training split.
    gold_keys = frozenset(item_key(e.raw_name) for e in gold_examples(read_rows()))
    manifest = build(
        args.input, args.out, synthetic=args.synthetic, seed=args.seed, count_tokens=count_tokens,
        max_tokens=args.max_tokens, exclude_keys=gold_keys,
    )
    if tokenizer is not None:
        from training.tokenizer import efficiency

        raw = [e.raw_name for e in read_jsonl(args.out / "test.jsonl")]
        manifest["tokenizer_efficiency_raw_names"] = efficiency(tokenizer, raw)
        (args.out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    print(json.dumps({k: v for k, v in manifest.items() if k != "splits"}, ensure_ascii=False, indent=2))
    for name, split in manifest["splits"].items():
        print(f"{name}: {split['examples']} examples, {len(split['per_category'])} categories")


if __name__ == "__main__":
    main()
