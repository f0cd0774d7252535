"""The benchmark command keeps working: ``python -m bench.run --size small`` runs to the end and its JSON is
complete and consistent. Nothing here checks a timing (the machine is shared); the full-size figures
are in the README. About 3–4 minutes: a broker, the model at five batch sizes and four serving options,
a zero-cost worker over 2,000 receipts at three take sizes, paced at a model's rate over 500, the real worker on a
backlog of 40 and for 20 receipts at 2 per second.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.model]

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def small_run(default_model, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench") / "small.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.run", "--size", "small", "--out", str(out)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(out.read_text(encoding="utf-8"))


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_the_result_names_its_date_machine_and_load(small_run):
    assert small_run["size"] == "small"
    datetime.fromisoformat(small_run["date"])
    assert small_run["machine"]["cpu_count"] >= 1 and small_run["machine"]["cpu"]
    for section in ("cache", "model", "pipeline", "latency"):
        load = small_run[section]["load_average_1m"]
        assert 0 <= load["min"] <= load["mean"] <= load["max"], section


def test_the_cache_section_is_consistent(small_run):
    cache = small_run["cache"]
    cold, warm = cache["cold"], cache["warm"]
    assert cold["items"] + warm["items"] == cache["stream_items"]
    for phase in (cold, warm):
        assert 0 < phase["answered_without_model"] < 1
        assert phase["items_generated_per_1000"] == pytest.approx(1000 * (1 - phase["answered_without_model"]), abs=1)
        assert 0 < phase["model_calls_per_1000"] <= phase["items_generated_per_1000"]
        assert 0 < phase["answered_from_cache"] <= phase["answered_without_model"]
        assert 0 < phase["cache_hit_ratio_of_lookups"] <= phase["answered_from_cache"]
    assert warm["answered_without_model"] > cold["answered_without_model"]
    assert cache["item_keys_generated_twice"] == 0
    sweep = [cache["zipf_sweep_warm_answered_without_model"][s] for s in ("0.9", "1.0", "1.1", "1.2")]
    assert sweep == sorted(sweep), "a steeper Zipf distribution must not lower the hit ratio"


def test_the_model_section_covers_every_batch_size_and_serving_option(small_run):
    model = small_run["model"]
    for batch_size in (1, 8, 32, 64, 128):
        run = model[f"batch_{batch_size}"]
        assert _positive(run["items_per_s"]) and _positive(run["seconds_per_batch"])
        assert run["batches"] >= 1 and run["items"] >= batch_size
        assert 0 <= run["prompt_padding_waste"] < 1 and 0 <= run["answer_padding_waste"] < 1
    assert model["batch_1"]["prompt_padding_waste"] == 0  # one row has nothing to pad
    takes = model["takes_at_default_limits"]
    assert takes["batches"] >= takes["takes"] and 0 < takes["batch_fill_mean"] <= 1
    assert 0 <= takes["prompt_padding_waste"] < 1
    for run in model["continuous_batching"].values():
        for generator in ("static", "continuous"):
            assert _positive(run[generator]["items_per_s"]) and run[generator]["items"] == model["batch_32"]["items"]
            assert 0 <= run[generator]["compute_waste"] < 1
        # Rows that end make room instead of padding: never more waste than the static batch of the same prompts.
        assert run["continuous"]["compute_waste"] <= run["static"]["compute_waste"]
        assert 0 <= run["continuous"]["answers_equal_to_static"] <= run["continuous"]["items"]
    options = model["batch_32_items_per_s_by_serving_option"]
    assert set(options) == {"unmerged_float32", "merged_float32", "unmerged_bfloat16", "merged_bfloat16"}
    assert all(_positive(v) for v in options.values())


def test_the_pipeline_section_saw_every_receipt_at_every_take_size(small_run):
    pipeline = small_run["pipeline"]
    assert pipeline["receipts"] == 2000 and _positive(pipeline["raw_confluent_items_per_s"])
    assert _positive(pipeline["raw_confluent_cpu_us_per_receipt"])
    runs = pipeline["by_take_max_events"]
    assert set(runs) == {"256", "1024", "4096"}
    for run in runs.values():
        assert run["receipts_out"] == pipeline["receipts"]
        assert run["worker_exit_code"] == 0
        assert _positive(run["items_per_s"]) and _positive(run["cpu_us_per_receipt"])
        assert run["ratio_to_raw"] == pytest.approx(run["items_per_s"] / pipeline["raw_confluent_items_per_s"], abs=0.002)
        assert 0 < run["enricher_items"] <= pipeline["items"]
        assert 0 < run["batch_fill_mean"] <= 1 and 0 <= run["full_batch_share"] <= 1
        assert run["cache"]["misses"] >= run["enricher_items"]  # every generated item was a miss first
    headline = runs[str(pipeline["take_max_events"])]
    assert pipeline["pipeline_items_per_s"] == headline["items_per_s"]
    assert headline["garbage_collections"]["count"] >= 0 and headline["garbage_collections"]["seconds"] >= 0
    assert _positive(pipeline["passthrough_items_per_s"])
    without_faust = pipeline["without_faust"]
    assert without_faust["receipts_out"] == pipeline["receipts"] and without_faust["worker_exit_code"] == 0
    assert _positive(without_faust["items_per_s"]) and 0 < without_faust["batch_fill_mean"] <= 1
    for at_model_rate in (pipeline["paced_model"], pipeline["real_model"]):
        assert at_model_rate["receipts_out"] == at_model_rate["receipts"] and at_model_rate["worker_exit_code"] == 0
        assert _positive(at_model_rate["items_per_s"]) and _positive(at_model_rate["worker_cores"])
    assert pipeline["paced_model_items_per_s"] == pipeline["paced_model"]["items_per_s"]
    assert pipeline["real_model_items_per_s"] == pipeline["real_model"]["items_per_s"]
    assert pipeline["ratio_pipeline_to_passthrough"] == pytest.approx(
        pipeline["pipeline_items_per_s"] / pipeline["passthrough_items_per_s"], abs=0.002
    )


def test_the_latency_section_measured_every_receipt_in_order(small_run):
    latency = small_run["latency"]
    assert latency["measured"] == latency["receipts"] == 20
    assert latency["worker_exit_code"] == 0
    assert 0 < latency["p50_s"] <= latency["p95_s"] <= latency["p99_s"] <= latency["max_s"]


def test_the_targets_are_evaluated_from_the_measured_figures(small_run):
    targets = small_run["targets"]
    assert targets["p99_within_bound"] == (small_run["latency"]["p99_s"] <= targets["p99_bound_s"])
    assert targets["pipeline_at_least_half_of_raw"] == (small_run["pipeline"]["ratio_pipeline_to_raw"] >= 0.5)
    by_take = targets.pop("pipeline_items_per_s_at_least_20000_by_take_max_events")
    assert set(by_take) == set(small_run["pipeline"]["by_take_max_events"])
    verdicts = [v for k, v in targets.items() if k not in ("p99_bound_s", "p99_bound_uses")] + list(by_take.values())
    assert all(isinstance(v, bool) for v in verdicts)
