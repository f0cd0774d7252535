"""The model version is a hash of what decides the answers, not of where or when the model was built."""

import json

from model.version import weights_version


def _model(root, weights: bytes = b"w" * 64, built_in: str = "/build/a", timing: float = 1.0):
    root.mkdir(parents=True)
    (root / "model.safetensors").write_bytes(weights)
    (root / "tokenizer.json").write_text('{"vocab": {"a": 0}}')
    (root / "adapter_config.json").write_text(json.dumps({"r": 8, "base_model_name_or_path": built_in}))
    (root / "manifest.json").write_text(json.dumps({"timings": {"base_s": timing}}))
    return root


def test_two_builds_of_the_same_weights_in_other_folders_share_a_version(tmp_path):
    first = _model(tmp_path / "clone1" / "adapter", built_in="/clone1/models/default/base", timing=1.0)
    second = _model(tmp_path / "clone2" / "renamed", built_in="/clone2/models/default/base", timing=9.0)
    assert weights_version(first) == weights_version(second)
    assert weights_version(first).startswith("sha256-")


def test_other_weights_or_another_tokenizer_give_another_version(tmp_path):
    reference = weights_version(_model(tmp_path / "a"))
    assert weights_version(_model(tmp_path / "b", weights=b"w" * 63 + b"x")) != reference
    changed = _model(tmp_path / "c")
    (changed / "tokenizer.json").write_text('{"vocab": {"b": 0}}')
    assert weights_version(changed) != reference


def test_what_a_training_run_leaves_beside_the_adapter_does_not_change_the_version(tmp_path):
    # Two clean builds of the same weights (2026-12-07) differed only here: PEFT writes target_modules
    # in the process's set order, and the Trainer pickles its run arguments into training_args.bin.
    first = _model(tmp_path / "a")
    second = _model(tmp_path / "b")
    (first / "adapter_config.json").write_text(json.dumps({"r": 8, "target_modules": ["q_proj", "v_proj", "o_proj"]}))
    (second / "adapter_config.json").write_text(json.dumps({"r": 8, "target_modules": ["o_proj", "q_proj", "v_proj"]}))
    (first / "training_args.bin").write_bytes(b"run at /clone1")
    (second / "training_args.bin").write_bytes(b"run at /clone2")
    assert weights_version(first) == weights_version(second)
