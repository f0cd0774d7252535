"""Build the project's small default model, reproducibly, into ``models/default``.

    python -m training.build_default_model [--out models/default] [--seed 1234] [--force]

Stages (all with the fixed seed and a fixed thread count): the real labelled items
(training/data/labels, gold split left out) plus a synthetic minority from the catalog →
deterministic train/validation splits → byte-level BPE tokenizer → a small Llama-architecture base
trained on that data → a LoRA adapter trained through training/sft.py (the production entrypoint) →
an accuracy check on the gold split with the serving loader, generator and parser. Result:
``models/default/{base,adapter,data,manifest.json}``; the model's version is a hash of its weights
and tokenizer (model/loader.py), so two builds share a version only when they hold the same weights.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch

from model.confidence import fit_calibration, read_calibration
from model.item_key import item_key
from model.lexicon import read_lexicon
from model.loader import MANIFEST_NAME, ModelSpec, load_model
from model.version import weights_version
from schemas.taxonomy import load_taxonomy
from training.base_model import BaseModelConfig, pretrain_base
from training.dataset import build as build_dataset
from training.examples import LabeledExample, read_jsonl, write_jsonl
from training.labels import gold_examples, read_rows, training_examples
from training.rankers import with_rankers
from training.lexicon import build_lexicon, shipped_brands
from training.synth import generate
from training.tokenizer import efficiency, train_tokenizer

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "models" / "default"

# Real strings are most of the data; synthetic ones from the catalog are a minority kept for coverage
# of item types the labelled set lacks (three synthetic per ten real).
SYNTHETIC_PER_REAL = 0.3
VOCAB_SIZE = 4096
# A 4.5M-parameter model learns almost nothing at the seed's 5e-5 (that rate is for 8B bases):
# measured on this task, 2e-3 with r=32 reaches high in-distribution accuracy in one epoch.
ADAPTER_LEARNING_RATE = 2e-3
ADAPTER_RANK = 32
ADAPTER_EPOCHS = 1
# Reading a word and copying it into the answer is learnt late by a model trained from scratch: the
# base's loss per answer token was still 3.3 and falling after 3 epochs on 5k items.
BASE_EPOCHS = 5
# CPU kernels reduce in an order that depends on the thread count: a fixed count makes two builds on
# machines of the same CPU type give the same weights. Different instruction sets (AVX2 vs AVX-512)
# can still differ in the last bits; that is not fixable from Python.
BUILD_THREADS = 2


def enrich_examples(base: Path, adapter: Path, examples: list[LabeledExample], calibrated: bool = True) -> tuple[list, float]:
    """The examples through the serving loader, generator and parser in batches of 64: answers and items/s."""
    from model.enricher import Enricher
    from model.generation import BatchGenerator

    loaded = load_model(ModelSpec(base_path=base, adapter_path=adapter))
    enricher = Enricher(BatchGenerator(loaded), load_taxonomy(), loaded.lexicon, loaded.calibration if calibrated else None)
    started = time.perf_counter()
    parsed = []
    for start in range(0, len(examples), 64):
        parsed.extend(enricher.enrich([e.raw_name for e in examples[start : start + 64]]))
    return parsed, len(examples) / max(time.perf_counter() - started, 1e-9)


def write_calibration(base: Path, adapter: Path, validation: list[LabeledExample]) -> dict:
    """Fit the confidence calibration (model/confidence.py) on the real validation items; gold never tunes anything."""
    from training.scoring import Gold, Prediction, real_points

    parsed, _ = enrich_examples(base, adapter, validation, calibrated=False)
    right = [
        {k: v == 1.0 for k, v in real_points(Prediction(p.normalized_name, p.product, p.brand, p.category.id, True), Gold(e.normalized_name, e.product, e.brand, e.category)).items()}
        for p, e in zip(parsed, validation)
    ]
    with_signals = [(p.signals, r) for p, r in zip(parsed, right) if p.signals is not None]
    calibration = fit_calibration([s for s, _ in with_signals], [r for _, r in with_signals])
    calibration.write(adapter)
    return {"items": len(with_signals), "groups": sorted(calibration.maps)}


def gold_accuracy(base: Path, adapter: Path, gold: list[LabeledExample]) -> dict:
    """The built model on the gold split through the serving loader, generator and parser, real-receipt rules."""
    from app.stages.confidence_gate import DEFAULT_THRESHOLDS, gate
    from training.scoring import Gold, Prediction, calibration_errors, real_points, real_scores

    ungated, items_per_second = enrich_examples(base, adapter, gold)
    taxonomy = load_taxonomy()
    # As served: the fields under the default confidence thresholds withheld.
    parsed = [gate(p, DEFAULT_THRESHOLDS, taxonomy) for p in ungated]
    predictions = [Prediction(p.normalized_name, p.product, p.brand, p.category.id, p.status in ("ok", "low_confidence")) for p in parsed]
    golds = [Gold(e.normalized_name, e.product, e.brand, e.category) for e in gold]
    scores = real_scores([e.raw_name for e in gold], predictions, golds)
    # Calibration is judged on the answers before the thresholds: a withheld field has no right or wrong.
    confident = [
        (asdict(p.confidence), real_points(Prediction(p.normalized_name, p.product, p.brand, p.category.id, True), g))
        for p, g in zip(ungated, golds)
        if p.confidence is not None
    ]
    scores.update(calibration_errors([c for c, _ in confident], [r for _, r in confident]))
    return {**{k: round(v, 4) for k, v in scores.items()}, "items_per_second_batch64": round(items_per_second, 1)}


def write_lexicon(adapter_dir: Path, train: list[LabeledExample], real_keys: frozenset[str]) -> dict:
    """The lexicon of the real items the adapter trained on (model/lexicon.py): never validation or gold."""
    real_train = [e for e in train if item_key(e.raw_name) in real_keys]
    lexicon = with_rankers(build_lexicon(real_train, shipped_brands()), real_train)
    lexicon.write(adapter_dir)
    return {"head_nouns": len(lexicon.head_nouns), "brand_aliases": len(lexicon.brands), "implied_heads": len(lexicon.implied_heads)}


def make_deterministic(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    torch.set_num_threads(BUILD_THREADS)
    torch.use_deterministic_algorithms(True, warn_only=True)


def build(out: Path, seed: int) -> dict:
    from training import sft

    make_deterministic(seed)
    taxonomy = load_taxonomy()
    timings: dict[str, float] = {}
    started = time.perf_counter()

    data_dir = out / "data"
    data_dir.mkdir(parents=True)
    rows = read_rows()
    real = training_examples(rows)
    gold = gold_examples(rows)
    gold_keys = frozenset(item_key(e.raw_name) for e in gold)
    write_jsonl(data_dir / "real.jsonl", real)
    write_jsonl(data_dir / "gold.jsonl", gold)
    data_manifest = build_dataset(
        [data_dir / "real.jsonl"],
        data_dir,
        synthetic=int(SYNTHETIC_PER_REAL * len(real)),
        seed=seed,
        test_share=0.0,
        exclude_keys=gold_keys,
    )
    (data_dir / "test.jsonl").unlink()  # the gold split is the test split
    train = list(read_jsonl(data_dir / "train.jsonl"))
    timings["data_s"] = round(time.perf_counter() - started, 1)

    mark = time.perf_counter()
    base_dir = out / "base"
    tokenizer = train_tokenizer((e.prompt() + e.answer(taxonomy) for e in train), VOCAB_SIZE, base_dir)
    # The base learns the task on the same train split (the stand-in for what a large base already
    # knows); validation and gold stay unseen by both stages.
    base_summary = pretrain_base(train, tokenizer, base_dir, BaseModelConfig(seed=seed, epochs=BASE_EPOCHS))
    shutil.rmtree(base_dir / "_checkpoints", ignore_errors=True)
    timings["base_s"] = round(time.perf_counter() - mark, 1)

    mark = time.perf_counter()
    adapter_dir = out / "adapter"
    model_args, data_args, training_args = sft.parse_args(
        [
            "--base_path", str(base_dir),
            "--train_file", str(data_dir / "train.jsonl"),
            "--validation_file", str(data_dir / "validation.jsonl"),
            "--output_dir", str(adapter_dir),
            "--adapter_name", "default-receipt-lora",
            "--learning_rate", str(ADAPTER_LEARNING_RATE),
            "--lora_r", str(ADAPTER_RANK),
            "--lora_alpha", str(2 * ADAPTER_RANK),
            "--per_device_train_batch_size", "32",
            "--num_train_epochs", str(ADAPTER_EPOCHS),
            "--eval_strategy", "no",
            "--save_strategy", "no",
            "--logging_steps", "50",
            "--seed", str(seed),
            "--data_seed", str(seed),
        ]
    )
    sft.run(model_args, data_args, training_args)
    real_keys = frozenset(item_key(e.raw_name) for e in real)
    lexicon_summary = write_lexicon(adapter_dir, train, real_keys)
    timings["adapter_s"] = round(time.perf_counter() - mark, 1)

    mark = time.perf_counter()
    validation = [e for e in read_jsonl(data_dir / "validation.jsonl") if item_key(e.raw_name) in real_keys]
    calibration_summary = write_calibration(base_dir, adapter_dir, validation)
    timings["calibration_s"] = round(time.perf_counter() - mark, 1)

    mark = time.perf_counter()
    accuracy = gold_accuracy(base_dir, adapter_dir, gold)
    timings["check_s"] = round(time.perf_counter() - mark, 1)
    manifest = {
        "version": weights_version(base_dir, adapter_dir),
        "seed": seed,
        "base_model": "receipt-llama-small",
        "base": base_summary,
        "data": {
            "real_train": data_manifest["splits"]["train"]["examples"],
            "validation": data_manifest["splits"]["validation"]["examples"],
            "gold": len(gold),
            "synthetic": int(SYNTHETIC_PER_REAL * len(real)),
            "train_sha256": data_manifest["splits"]["train"]["sha256"],
        },
        "lexicon": lexicon_summary,
        "calibration": calibration_summary,
        "tokenizer": {"vocab_size": len(tokenizer), **efficiency(tokenizer, [e.raw_name for e in train[:2000]])},
        "gold_check": accuracy,
        "timings": timings,
        "torch_threads": torch.get_num_threads(),
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return manifest


def _stale_reason(out: Path) -> str | None:
    """Why the model in ``out`` was built by older code (a lexicon or calibration format this code refuses), or None."""
    try:
        read_lexicon(out / "adapter")
        read_calibration(out / "adapter")
    except ValueError as error:
        return str(error)
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--force", action="store_true", help="rebuild even if a model is already there")
    args = parser.parse_args(argv)
    if (args.out / MANIFEST_NAME).exists() and not args.force:
        stale = _stale_reason(args.out)
        if stale is None:
            print(f"{args.out} already holds a model (use --force to rebuild)")
            return
        print(f"{args.out} holds a model this code cannot serve ({stale}); rebuilding it")
    if args.out.exists():
        shutil.rmtree(args.out)
    manifest = build(args.out, args.seed)
    print(json.dumps({k: manifest[k] for k in ("version", "gold_check", "timings")}, indent=2))


if __name__ == "__main__":
    main()
