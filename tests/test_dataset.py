import pytest

from model.item_key import item_key
from training.dataset import DatasetError, build, deduplicate, split_of
from training.examples import LabeledExample, read_jsonl, write_jsonl


def _example(raw: str, category: str = "beverages") -> LabeledExample:
    return LabeledExample(raw_name=raw, normalized_name="Сок", product="Сок", brand=None, category=category)


def test_item_key_strips_case_spacing_article_codes_and_quantity_tails():
    assert item_key("36572156371 вино бон вояж совиньон бл 1.000 x 469.90") == "вино бон вояж совиньон бл"
    assert item_key("  СОК   СОЧН ДОЛ 1,93Л ") == item_key("сок сочн дол 1,93л")
    assert item_key("ЙОГУРТ 2,5% 300Г") != item_key("ЙОГУРТ 3,2% 300Г")  # numbers are kept


def test_the_same_item_never_lands_on_both_sides_of_a_split():
    variants = ["СОК ЯБЛ 1Л", "сок ябл 1л", "123456 СОК ЯБЛ 1Л", "СОК ЯБЛ 1Л 1.000 x 99.90"]
    assert len({split_of(v) for v in variants}) == 1
    assert len(deduplicate(_example(v) for v in variants)) == 1


def test_split_shares_follow_the_requested_sizes():
    splits = [split_of(f"товар номер {i}") for i in range(20_000)]
    assert 0.04 < splits.count("test") / len(splits) < 0.06
    assert 0.04 < splits.count("validation") / len(splits) < 0.06


def test_build_writes_splits_manifest_counts_and_drops_over_budget(tmp_path):
    source = tmp_path / "in.jsonl"
    rows = [_example(f"СОК {i}") for i in range(300)] + [_example("ОЧЕНЬ ДЛИННАЯ " * 20)] + [_example("СОК 1")]
    write_jsonl(source, rows)
    manifest = build([source], tmp_path / "out", count_tokens=lambda texts: [len(t.split()) for t in texts], max_tokens=10)
    assert manifest["duplicates_removed"] == 1
    assert manifest["over_token_budget"]["dropped"] == 1
    total = sum(s["examples"] for s in manifest["splits"].values())
    assert total == 300
    assert sum(1 for _ in read_jsonl(tmp_path / "out" / "train.jsonl")) == manifest["splits"]["train"]["examples"]


def test_an_unknown_category_names_the_file_and_line(tmp_path):
    source = tmp_path / "bad.csv"
    source.write_text("raw_name,normalized_name,product,brand,category\nСОК,Сок,Сок,-,beverages\nX,X,X,-,juices\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="bad.csv:2"):
        build([source], tmp_path / "out")
