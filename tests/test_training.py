"""The real training entrypoint on CPU: a tiny base, a few dozen steps, a complete reloadable run directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.training

DEEPSPEED_CONFIGS = [REPO_ROOT / "deploy" / "deepspeed" / "zero2.json", REPO_ROOT / "deploy" / "deepspeed" / "zero3.json"]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory) -> tuple[Path, Path]:
    """An untrained Llama-architecture base with the project's tokenizer, plus a small labeled set."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from schemas.taxonomy import load_taxonomy
    from training.examples import write_jsonl
    from training.labels import read_rows, training_examples
    from training.synth import generate
    from training.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("tiny")
    taxonomy = load_taxonomy()
    examples = generate(400, seed=7)
    write_jsonl(root / "train.jsonl", examples[:320])
    write_jsonl(root / "validation.jsonl", examples[320:])
    real = training_examples(read_rows())[:400]
    write_jsonl(root / "real.jsonl", real)
    tokenizer = train_tokenizer((e.prompt() + e.answer(taxonomy) for e in examples + real), 1024, root / "base")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=256, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(root / "base")
    return root / "base", root


def test_sft_entrypoint_trains_loss_falls_and_the_run_directory_reloads(tiny_base, tmp_path):
    base, data = tiny_base
    run_dir = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    subprocess.run(
        [
            sys.executable, "-m", "training.sft",
            "--base_path", str(base),
            "--train_file", str(data / "train.jsonl"),
            "--validation_file", str(data / "validation.jsonl"),
            "--output_dir", str(run_dir),
            "--max_steps", "40",
            "--learning_rate", "1e-2",
            # An untrained base gives LoRA little to steer; a fully trained head makes 40 steps show.
            "--lora_modules_to_save", "lm_head",
            "--per_device_train_batch_size", "16",
            "--logging_steps", "5",
            "--eval_steps", "20",
            "--save_steps", "20",
            "--use_cpu", "true",
            "--disable_tqdm", "true",
        ],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=600,
    )
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "run_config.json",
                 "data_manifest.json", "metrics.json", "manifest.json"):
        assert (run_dir / name).exists(), name
    assert list(run_dir.glob("checkpoint-*")), "no checkpoint written every N steps"

    losses = _logged_losses(run_dir)
    assert len(losses) >= 6
    assert sum(losses[-2:]) / 2 < 0.9 * sum(losses[:2]) / 2, losses

    config = json.loads((run_dir / "run_config.json").read_text())
    assert config["training"]["lr_scheduler_type"] == "cosine"
    assert config["training"]["warmup_steps"] == 0.1
    manifest = json.loads((run_dir / "data_manifest.json").read_text())
    assert manifest["train_examples"] == 320 and len(manifest["train_sha256"]) == 64

    from model.generation import BatchGenerator
    from model.loader import ModelSpec, load_model

    loaded = load_model(ModelSpec(base_path=base, adapter_path=run_dir))
    assert loaded.identity.adapter == "receipt-lora"
    assert len(BatchGenerator(loaded).generate(["Чек: СОК ЯБЛ 1Л\nОтвет: "])) == 1


def _logged_losses(run_dir: Path) -> list[float]:
    """The training losses the run logged, in order (metrics.json's log history)."""
    history = json.loads((run_dir / "metrics.json").read_text())["log_history"]
    return [entry["loss"] for entry in history if "loss" in entry]


def test_sft_defaults_are_the_seed_articles_settings():
    from training.sft import parse_args

    _, _, training_args = parse_args(["--base_path", "b", "--train_file", "t", "--output_dir", "o"])
    assert training_args.learning_rate == 5e-5
    assert training_args.lr_scheduler_type == "cosine"
    assert training_args.warmup_steps == 0.1


@pytest.mark.parametrize("config_path", DEEPSPEED_CONFIGS, ids=lambda p: p.name)
def test_deepspeed_configs_validate_and_the_entrypoint_builds_a_deepspeed_trainer(config_path, tiny_base, tmp_path, monkeypatch):
    from deepspeed.runtime.config import DeepSpeedConfig

    from training.sft import build_trainer, parse_args

    base, data = tiny_base
    # One CPU rank, as the deepspeed launcher would describe it; without these DeepSpeed looks for MPI.
    from harness.kafka_broker import free_port

    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(name, value)
    model_args, data_args, training_args = parse_args(
        [
            "--base_path", str(base), "--train_file", str(data / "train.jsonl"), "--output_dir", str(tmp_path),
            "--deepspeed", str(config_path), "--use_cpu", "true",
        ]
    )
    trainer, *_ = build_trainer(model_args, data_args, training_args)
    assert trainer.is_deepspeed_enabled
    resolved = training_args.hf_deepspeed_config.config
    assert resolved["zero_optimization"]["stage"] == json.loads(config_path.read_text())["zero_optimization"]["stage"]
    DeepSpeedConfig(resolved)  # raises on unknown or inconsistent keys


@pytest.mark.parametrize("config_path", DEEPSPEED_CONFIGS, ids=lambda p: p.name)
def test_the_deepspeed_launcher_trains_on_two_cpu_ranks_and_the_adapter_loads(config_path, tiny_base, tmp_path):
    """`deepspeed --num_gpus 2 training/sft.py --deepspeed CONFIG`: two CPU ranks over gloo, the labelled data."""
    from harness.kafka_broker import free_port

    base, data = tiny_base
    run_dir = tmp_path / "run"
    launcher = Path(sys.executable).with_name("deepspeed")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "OMP_NUM_THREADS": "1", "TORCH_EXTENSIONS_DIR": str(REPO_ROOT / ".local" / "torch_extensions")}
    subprocess.run(
        [
            str(launcher), "--num_gpus", "2", "--master_port", str(free_port()),
            "training/sft.py", "--deepspeed", str(config_path),
            "--base_path", str(base),
            "--train_file", str(data / "real.jsonl"),
            "--output_dir", str(run_dir),
            "--max_steps", "45",
            "--learning_rate", "1e-2",
            "--lora_modules_to_save", "lm_head",
            "--per_device_train_batch_size", "8",
            "--logging_steps", "5",
            "--eval_strategy", "no",
            "--save_strategy", "no",
            "--use_cpu", "true",
            "--disable_tqdm", "true",
        ],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        timeout=600,
    )
    config = json.loads((run_dir / "run_config.json").read_text())
    stage = json.loads(config_path.read_text())["zero_optimization"]["stage"]
    assert config["deepspeed_zero_stage"] == stage and config["world_size"] == 2

    losses = _logged_losses(run_dir)
    assert len(losses) >= 5
    assert sum(losses[-2:]) / 2 < 0.9 * sum(losses[:2]) / 2, losses

    from model.generation import BatchGenerator
    from model.loader import ModelSpec, load_model

    loaded = load_model(ModelSpec(base_path=base, adapter_path=run_dir))
    # LoRA's B matrices start at zero: non-zero ones prove the ranks' training reached the saved file.
    lora_b = [p for name, p in loaded.model.named_parameters() if "lora_B" in name]
    assert lora_b and any(float(p.abs().sum()) > 0 for p in lora_b), "the saved adapter holds untrained LoRA weights"
    assert len(BatchGenerator(loaded).generate(["Чек: СОК ЯБЛ 1Л\nОтвет: "])) == 1


@pytest.fixture(autouse=True)
def _forget_the_deepspeed_config():
    """transformers keeps the last DeepSpeed config process-wide; left at ZeRO-3, every later
    from_pretrained in the session runs under zero.Init and fails without the launcher's LOCAL_RANK."""
    yield
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
