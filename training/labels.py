"""The real labelled items: load, check and split them (pure, no torch).

    python -m training.labels check           # every row parses, names a taxonomy category, gold is disjoint
    python -m training.labels agreement       # the audit: the two independent passes over the gold split

The rows live in ``training/data/labels/items.tsv`` (one per distinct item key), labelled by LLM
labellers following ``training/labelling.md``; each row keeps its source, labeller and guideline
version. Rows marked ``gold`` are the test split: no training stage may read them
(``training_examples`` refuses to return one).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from model.item_key import item_key
from model.prompt import FIELD_SEPARATOR, NO_BRAND
from schemas.taxonomy import Taxonomy, UnknownCategory, load_taxonomy
from training.examples import LabeledExample

LABELS_DIR = Path(__file__).resolve().parent / "data" / "labels"
ITEMS_FILE = LABELS_DIR / "items.tsv"
FIRST_PASS_FILE = LABELS_DIR / "gold_first_pass.tsv"
SECOND_PASS_FILE = LABELS_DIR / "gold_second_pass.tsv"
COLUMNS = ("source", "source_id", "raw_name", "normalized_name", "product", "brand", "category", "labeller", "guideline", "split")
SPLITS = ("gold", "train")
# Gold is drawn by a salted hash of the item key: stable, independent of the file's order and of the
# train/validation hash in training/dataset.py. 11% of ~11,400 distinct items gives ~1,300.
GOLD_SALT = "gold:"
GOLD_SHARE = 0.11


class LabelError(ValueError):
    """A labelled row that cannot be used; the message names the file, the line and the field."""


@dataclass(frozen=True, slots=True)
class LabeledRow:
    source: str
    source_id: str
    raw_name: str
    normalized_name: str
    product: str
    brand: str | None
    category: str
    labeller: str
    guideline: str
    split: str

    def example(self) -> LabeledExample:
        return LabeledExample(self.raw_name, self.normalized_name, self.product, self.brand, self.category)


def is_gold(raw_name: str) -> bool:
    digest = hashlib.sha256((GOLD_SALT + item_key(raw_name)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < GOLD_SHARE


def _checked(row: dict[str, str], where: str, taxonomy: Taxonomy) -> LabeledRow:
    for column in COLUMNS:
        if not (row.get(column) or "").strip():
            raise LabelError(f"{where}: column {column!r} is empty")
    for column in ("normalized_name", "product", "brand"):
        if FIELD_SEPARATOR in row[column]:
            raise LabelError(f"{where}: {column} contains the answer separator {FIELD_SEPARATOR!r}")
    try:
        taxonomy.by_id(row["category"])
    except UnknownCategory as error:
        raise LabelError(f"{where}: {error}") from None
    if row["split"] not in SPLITS:
        raise LabelError(f"{where}: split {row['split']!r} is not one of {SPLITS}")
    if (row["split"] == "gold") != is_gold(row["raw_name"]):
        raise LabelError(f"{where}: split {row['split']!r} disagrees with the gold hash of its item key")
    brand = row["brand"].strip()
    return LabeledRow(
        **{c: row[c].strip() for c in COLUMNS if c != "brand"}, brand=None if brand == NO_BRAND else brand
    )


def read_rows(path: Path = ITEMS_FILE, taxonomy: Taxonomy | None = None) -> list[LabeledRow]:
    """Every row of a labels file, checked; raises LabelError naming the first bad line."""
    taxonomy = taxonomy or load_taxonomy()
    with Path(path).open(encoding="utf-8", newline="") as source:
        reader = csv.DictReader(source, delimiter="\t", quoting=csv.QUOTE_NONE, quotechar=None)
        missing = set(COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise LabelError(f"{path}: header lacks {sorted(missing)}")
        rows = [_checked(row, f"{path}:{number}", taxonomy) for number, row in enumerate(reader, 2)]
    keys = Counter(item_key(r.raw_name) for r in rows)
    repeated = [k for k, n in keys.items() if n > 1]
    if repeated:
        raise LabelError(f"{path}: {len(repeated)} item keys appear twice, e.g. {repeated[0]!r}")
    return rows


def write_rows(path: Path, rows: Iterable[LabeledRow]) -> int:
    """Plain tab-separated lines: quotes stay as printed on the receipt (no CSV quoting)."""
    count = 0
    with Path(path).open("w", encoding="utf-8", newline="") as out:
        out.write("\t".join(COLUMNS) + "\n")
        for row in rows:
            values = [getattr(row, c) if c != "brand" else (row.brand or NO_BRAND) for c in COLUMNS]
            if any("\t" in v or "\n" in v for v in values):
                raise LabelError(f"row {row.source}:{row.source_id} has a tab or newline inside a field")
            out.write("\t".join(values) + "\n")
            count += 1
    return count


def gold_examples(rows: Sequence[LabeledRow]) -> list[LabeledExample]:
    return [r.example() for r in rows if r.split == "gold"]


def training_examples(rows: Sequence[LabeledRow]) -> list[LabeledExample]:
    """The rows training may see: never a gold row, never a string whose key is a gold key.

    Rows whose product is ``-`` (unreadable strings, labelled so under guideline ``.1``) are left out:
    an answer the guideline no longer allows is not one to learn.
    """
    gold_keys = {item_key(r.raw_name) for r in rows if r.split == "gold"}
    return [
        r.example()
        for r in rows
        if r.split == "train" and item_key(r.raw_name) not in gold_keys and r.product != NO_BRAND
    ]


def agreement(first: Sequence[LabeledRow], second: Sequence[LabeledRow]) -> dict[str, float]:
    """Per-field agreement of two independent passes over the same items (matched by item key)."""
    from training.scoring import fold, fold_brand, head_noun

    by_key = {item_key(r.raw_name): r for r in second}
    pairs = [(a, by_key[item_key(a.raw_name)]) for a in first if item_key(a.raw_name) in by_key]
    n = max(1, len(pairs))

    def share(same) -> float:
        return round(sum(bool(same(a, b)) for a, b in pairs) / n, 4)

    return {
        "items": len(pairs),
        "product_head_noun": share(lambda a, b: head_noun(a.product) == head_noun(b.product)),
        "product_exact": share(lambda a, b: fold(a.product) == fold(b.product)),
        "brand": share(lambda a, b: fold_brand(a.brand) == fold_brand(b.brand)),
        "brand_presence": share(lambda a, b: (a.brand is None) == (b.brand is None)),
        "category": share(lambda a, b: a.category == b.category),
        "normalized_name_exact": share(lambda a, b: fold(a.normalized_name) == fold(b.normalized_name)),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["check", "agreement"])
    parser.add_argument("--file", type=Path, default=ITEMS_FILE)
    args = parser.parse_args(argv)
    if args.command == "agreement":
        import json

        print(json.dumps(agreement(read_rows(FIRST_PASS_FILE), read_rows(SECOND_PASS_FILE)), indent=2))
        return
    rows = read_rows(args.file)
    splits = Counter(r.split for r in rows)
    sources = Counter(r.source for r in rows)
    branded = sum(r.brand is not None for r in rows) / max(1, len(rows))
    print(f"{args.file}: {len(rows)} rows, splits {dict(splits)}, sources {dict(sources)}, branded {branded:.0%}")


if __name__ == "__main__":
    main()
