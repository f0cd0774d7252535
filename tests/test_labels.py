"""The real labelled items: every row loads and parses, the gold split never reaches training."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from model.item_key import item_key
from schemas.taxonomy import load_taxonomy
from training.dataset import build as build_dataset
from training.examples import read_jsonl, write_jsonl
from training.labels import (
    COLUMNS,
    ITEMS_FILE,
    LABELS_DIR,
    LabelError,
    gold_examples,
    is_gold,
    read_rows,
    training_examples,
)

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def rows():
    return read_rows()


def _guideline_version() -> str:
    text = (REPO_ROOT / "training" / "labelling.md").read_text(encoding="utf-8")
    return re.search(r"Version: \*\*([^*]+)\*\*", text).group(1)


def test_every_labelled_row_loads_with_provenance_and_a_taxonomy_category(rows):
    taxonomy = load_taxonomy()
    assert len(rows) >= 1000
    for row in rows:
        assert row.source in ("dfc2021", "llama-receipts") and row.source_id and row.labeller
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}\.\d+", row.guideline) and row.guideline <= _guideline_version()
        taxonomy.by_id(row.category)
        row.example().answer(taxonomy)  # the answer format accepts every row (no separator, no empty field)


def test_the_gold_split_is_drawn_by_item_key_and_shares_no_key_with_training_data(rows, tmp_path):
    gold = gold_examples(rows)
    gold_keys = {item_key(e.raw_name) for e in gold}
    assert gold and all(is_gold(e.raw_name) for e in gold)
    assert not gold_keys & {item_key(e.raw_name) for e in training_examples(rows)}

    # The build's own path: real rows plus synthetic ones, gold keys excluded, upper-case variants added.
    write_jsonl(tmp_path / "real.jsonl", training_examples(rows) + gold[:20])  # a gold row slipped into an input
    build_dataset([tmp_path / "real.jsonl"], tmp_path, synthetic=200, seed=1, test_share=0.0,
                  exclude_keys=frozenset(gold_keys), augment_train=lambda ex: [e for e in ex[:50]])
    for split in ("train", "validation"):
        assert not gold_keys & {item_key(e.raw_name) for e in read_jsonl(tmp_path / f"{split}.jsonl")}


def test_the_second_pass_covers_only_gold_items_by_another_labeller(rows):
    first = {item_key(r.raw_name): r for r in rows}
    second = read_rows(LABELS_DIR / "gold_second_pass.tsv")
    assert second
    for row in second:
        assert row.split == "gold"
        if item_key(row.raw_name) in first:
            assert first[item_key(row.raw_name)].labeller != row.labeller


def _write(path: Path, **overrides: str) -> Path:
    row = {"source": "dfc2021", "source_id": "1", "raw_name": "сок яблочный 1л", "normalized_name": "Сок яблочный 1 л",
           "product": "Сок", "brand": "-", "category": "beverages", "labeller": "t", "guideline": "g"}
    row["split"] = "gold" if is_gold(row["raw_name"]) else "train"
    row.update(overrides)
    path.write_text("\t".join(COLUMNS) + "\n" + "\t".join(row[c] for c in COLUMNS) + "\n", encoding="utf-8")
    return path


def test_a_bad_row_is_refused_with_its_line_and_field(tmp_path):
    assert read_rows(_write(tmp_path / "ok.tsv"))[0].brand is None
    with pytest.raises(LabelError, match=r"bad\.tsv:2: .*'drinks'"):
        read_rows(_write(tmp_path / "bad.tsv", category="drinks"))
    with pytest.raises(LabelError, match=r"empty\.tsv:2: column 'product' is empty"):
        read_rows(_write(tmp_path / "empty.tsv", product=" "))
    flipped = "train" if is_gold("сок яблочный 1л") else "gold"
    with pytest.raises(LabelError, match="disagrees with the gold hash"):
        read_rows(_write(tmp_path / "split.tsv", split=flipped))
    with pytest.raises(LabelError, match="separator"):
        read_rows(_write(tmp_path / "sep.tsv", product="Сок##Напитки"))


def test_the_labels_file_is_where_the_build_reads_it():
    assert ITEMS_FILE.exists() and ITEMS_FILE.parent == LABELS_DIR
