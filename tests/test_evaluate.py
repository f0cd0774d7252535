"""The evaluation command on the default model: reports are written and agree with themselves."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.model


def test_evaluation_writes_consistent_json_and_markdown_reports(default_model, tmp_path):
    out = tmp_path / "heldout"
    subprocess.run(
        [
            sys.executable, "-m", "training.evaluate",
            "--base", str(default_model.base), "--adapter", str(default_model.adapter),
            "--data", str(default_model.base.parent / "data" / "test.jsonl"), "--limit", "40", "--out", str(out),
        ],
        cwd=REPO_ROOT, check=True, timeout=600,
    )
    report = json.loads(out.with_suffix(".json").read_text())
    scores = report["scores"]
    assert scores["items"] == len(report["examples"]) == 40
    categories_right = sum(e["predicted"][3] == e["gold"][3] for e in report["examples"]) / 40
    assert scores["category"] == pytest.approx(categories_right)
    assert 0 <= scores["category_macro_f1"] <= 1 and scores["items_per_second"] > 0
    assert "| heldout (adapter) |" in out.with_suffix(".md").read_text()

    compared = subprocess.run(
        [sys.executable, "-m", "training.evaluate", "--compare", str(out.with_suffix(".json")), str(out.with_suffix(".json"))],
        cwd=REPO_ROOT, check=True, capture_output=True, text=True, timeout=120,
    ).stdout
    assert compared.count("| heldout (adapter) |") == 2


def test_benchmark_scoring_uses_the_mapped_categories_and_lists_the_published_peers(default_model, tmp_path):
    benchmark = REPO_ROOT.parent / "shared" / "data" / "receipt-parser-benchmark" / "benchmark_standard.csv"
    if not benchmark.exists():
        pytest.skip("../shared/data is not beside this checkout")
    out = tmp_path / "bench"
    subprocess.run(
        [
            sys.executable, "-m", "training.evaluate",
            "--base", str(default_model.base), "--adapter", str(default_model.adapter),
            "--benchmark", str(benchmark), "--out", str(out),
        ],
        cwd=REPO_ROOT, check=True, timeout=600,
    )
    report = json.loads(out.with_suffix(".json").read_text())
    assert report["scores"]["items"] == 45
    gold_categories = {e["gold"][3] for e in report["examples"]}
    mapped = set(json.loads((REPO_ROOT / "training" / "benchmark_category_map.json").read_text()).values())
    assert gold_categories <= mapped, gold_categories - mapped
    assert "Tinkoff" in out.with_suffix(".md").read_text()
