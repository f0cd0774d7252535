"""The evaluation command on the default model: reports are written and agree with themselves."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.model

BENCHMARK = REPO_ROOT / "training" / "data" / "receipt-parser-benchmark" / "benchmark_standard.csv"


def _evaluate(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "training.evaluate", *args],
        cwd=REPO_ROOT, check=check, capture_output=True, text=True, timeout=600,
    )


def test_evaluation_writes_consistent_json_and_markdown_reports(default_model, tmp_path):
    out = tmp_path / "heldout"
    test_split = default_model.base.parent / "data" / "gold.jsonl"
    printed = _evaluate(
        "--base", str(default_model.base), "--adapter", str(default_model.adapter),
        "--data", str(test_split), "--limit", "40", "--out", str(out),
    ).stdout
    report = json.loads((tmp_path / "heldout.json").read_text(encoding="utf-8"))
    scores, examples = report["scores"], report["examples"]
    assert scores["items"] == len(examples) == 40
    assert scores["category"] == pytest.approx(sum(e["predicted"][3] == e["gold"][3] for e in examples) / 40)
    assert scores["product"] == pytest.approx(sum(e["points"]["product"] for e in examples) / 40)
    # A withheld low-confidence field still came from an answer that parsed.
    assert scores["parsed"] == pytest.approx((report["statuses"].get("ok", 0) + report["statuses"].get("low_confidence", 0)) / 40)
    confidence = report["confidence"]
    assert set(confidence["ece"]) == {"product", "brand", "category"}
    rows = [row for curve in confidence["curves"].values() for row in curve]
    assert all(0 <= row["coverage"] <= 1 for row in rows)
    # A threshold that keeps nothing has no precision; every other has one.
    assert all((row["precision"] is None) == (row["coverage"] == 0) for row in rows)
    assert all(0 <= row["precision"] <= 1 for row in rows if row["precision"] is not None)
    assert all(e["confidence"] is not None for e in examples)
    assert sum(row["support"] for row in report["per_category"].values()) == 40
    assert 0 <= scores["category_macro_f1"] <= 1 and scores["items_per_second"] > 0
    assert report["model"]["adapter"] and report["mode"] == "adapter"
    worst_points = [sum(e["points"].values()) for e in report["worst_examples"]]
    assert worst_points == sorted(worst_points) and worst_points[0] == min(sum(e["points"].values()) for e in examples)
    assert "| heldout (adapter) |" in (tmp_path / "heldout.md").read_text(encoding="utf-8")
    assert "worst items" in printed

    compared = _evaluate("--compare", str(tmp_path / "heldout.json"), str(tmp_path / "heldout.json")).stdout
    assert compared.count("heldout (adapter)") == 2
    assert "| category | " in compared and "+0.0 pt" in compared


def test_benchmark_report_maps_categories_and_lists_tinkoff_rescored_and_published_peers(default_model, tmp_path):
    _evaluate(
        "--base", str(default_model.base), "--adapter", str(default_model.adapter),
        "--benchmark", str(BENCHMARK), "--out", str(tmp_path / "bench"),
    )
    report = json.loads((tmp_path / "bench.json").read_text(encoding="utf-8"))
    assert report["scores"]["items"] == len(report["examples"]) == 45
    mapping = json.loads((REPO_ROOT / "training" / "benchmark_category_map.json").read_text(encoding="utf-8"))["ours"]
    assert all(mapping[e["our_category"]] == e["predicted"][3] for e in report["examples"])
    assert report["scores"]["category"] == pytest.approx(sum(e["points"]["category"] for e in report["examples"]) / 45)
    table = (tmp_path / "bench.md").read_text(encoding="utf-8")
    assert "its published answers, this rule" in table and "published, hand-graded" in table


def test_few_shot_baseline_runs_through_the_enricher_with_shots_from_distinct_categories(default_model, tmp_path):
    data = default_model.base.parent / "data"
    _evaluate(
        "--base", str(default_model.base), "--mode", "few-shot", "--shots-from", str(data / "train.jsonl"),
        "--no-category-list", "--data", str(data / "gold.jsonl"), "--limit", "8", "--out", str(tmp_path / "fewshot"),
    )
    report = json.loads((tmp_path / "fewshot.json").read_text(encoding="utf-8"))
    assert report["adapter"] is None and report["model"]["adapter"] is None
    assert len(report["shots"]) == 3 and not report["category_list_in_prompt"]
    assert report["scores"]["items"] == 8 and sum(report["statuses"].values()) == 8


def test_a_baseline_prompt_longer_than_the_context_stops_with_advice(default_model, tmp_path):
    result = _evaluate(
        "--base", str(default_model.base), "--mode", "zero-shot",
        "--data", str(default_model.base.parent / "data" / "gold.jsonl"), "--limit", "4", "--out", str(tmp_path / "zero"),
        check=False,
    )
    # The category list alone is ~190 tokens; with the answer budget it exceeds the small model's 256.
    assert result.returncode != 0
    assert "--no-category-list" in result.stderr
    assert not (tmp_path / "zero.json").exists()


def test_the_model_is_scored_against_the_corrections_export(default_model, tmp_path):
    """``--labels`` reads the export's format: how often the current model still disagrees with what people fixed."""
    from training.corrections import GUIDELINE, SOURCE
    from training.labels import LabeledRow, is_gold, write_rows

    fixed = [
        ("МОЛОКО ПРОСТОКВАШИНО 3,2% 930МЛ", "Молоко Простоквашино 3,2% 930 мл", "Молоко", "Простоквашино", "dairy"),
        ("ХЛЕБ БОРОДИНСКИЙ НАРЕЗ 300Г", "Хлеб Бородинский нарезка 300 г", "Хлеб", None, "pets"),  # a fix the model will not guess
    ]
    rows = [
        LabeledRow(SOURCE, f"id{i}", raw, name, product, brand, category, "analyst", GUIDELINE, "gold" if is_gold(raw) else "train")
        for i, (raw, name, product, brand, category) in enumerate(fixed)
    ]
    write_rows(tmp_path / "corrections.tsv", rows)
    _evaluate(
        "--base", str(default_model.base), "--adapter", str(default_model.adapter),
        "--labels", str(tmp_path / "corrections.tsv"), "--out", str(tmp_path / "overrides"),
    )
    report = json.loads((tmp_path / "overrides.json").read_text(encoding="utf-8"))
    assert report["data"]["path"] == str(tmp_path / "corrections.tsv") and report["scores"]["items"] == 2
    assert [e["gold"][3] for e in report["examples"]] == ["dairy", "pets"]
    assert report["scores"]["category"] == pytest.approx(sum(e["predicted"][3] == e["gold"][3] for e in report["examples"]) / 2)
    assert report["scores"]["category"] <= 0.5  # nothing in its training says bread is pet food
