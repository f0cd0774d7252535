"""Load the base model (NF4 4-bit where CUDA is present), its tokenizer and the LoRA adapter.

Training and serving build the quantization and LoRA configs through the same functions here, so
the service loads the model exactly as it was trained.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, PreTrainedTokenizerBase

from schemas.events import ModelIdentity

MANIFEST_NAME = "manifest.json"
# Used only when a model directory carries no manifest: enough for the answer format's four fields.
DEFAULT_MAX_NEW_TOKENS = 64
LORA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class ModelNotFound(FileNotFoundError):
    """A model path that does not exist; a hub lookup would only burn time here."""


@dataclass(frozen=True)
class ModelSpec:
    base_path: Path
    adapter_path: Path | None = None
    device: str = "auto"
    quantize_4bit: bool | None = None  # None: NF4 exactly where CUDA is present
    for_training: bool = False


@dataclass
class LoadedModel:
    model: Any
    tokenizer: PreTrainedTokenizerBase
    identity: ModelIdentity
    device: torch.device
    max_new_tokens: int


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but torch sees no CUDA device")
    return torch.device(device)


def compute_dtype(device: torch.device) -> torch.dtype:
    # bf16 on GPUs that have it (QLoRA's compute type); fp32 on CPU, where bf16 matmuls gain little here.
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def build_quantization_config(dtype: torch.dtype) -> BitsAndBytesConfig:
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=dtype,
    )


def build_lora_config(r: int = 16, alpha: int = 32, dropout: float = 0.05, target_modules=LORA_TARGET_MODULES, modules_to_save=None):
    from peft import LoraConfig

    return LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        modules_to_save=list(modules_to_save) if modules_to_save else None,
        task_type="CAUSAL_LM",
    )


def disable_cpu_4bit_repacking(model: Any) -> int:
    """Keep bitsandbytes from repacking 4-bit weights into its AVX512-BF16 CPU layout.

    On such CPUs an eval-mode forward repacks the weights; LoRA gradients computed afterwards are
    silently wrong and merge_and_unload gives garbage (../shared/notes/ml-on-cpu.md: 99% → 84%
    exact match). Costs 10–20% generation speed, so it is applied only for training and merging.
    """
    import bitsandbytes

    layers = [m for m in model.modules() if isinstance(m, bitsandbytes.nn.Linear4bit)]
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
    return len(layers)


def read_manifest(path: Path) -> dict[str, Any]:
    manifest = path / MANIFEST_NAME
    return json.loads(manifest.read_text(encoding="utf-8")) if manifest.exists() else {}


def _require(path: Path, what: str) -> None:
    if not path.exists():
        raise ModelNotFound(
            f"{what} not found at {path}. Build the project's default model with "
            "`python -m training.build_default_model`, or point ENRICHER_MODEL_BASE_PATH / "
            "ENRICHER_MODEL_ADAPTER_PATH at a local model directory."
        )


def _content_version(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            if file.suffix in {".json", ".safetensors"}:
                digest.update(file.name.encode())
                digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.padding_side = "left"  # right padding in batched greedy generation ruins answers (91% → 47%)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(spec: ModelSpec) -> LoadedModel:
    base_path = Path(spec.base_path)
    _require(base_path, "base model")
    if spec.adapter_path is not None:
        _require(Path(spec.adapter_path), "LoRA adapter")
    device = resolve_device(spec.device)
    dtype = compute_dtype(device)
    quantize = device.type == "cuda" if spec.quantize_4bit is None else spec.quantize_4bit

    kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": True}
    if quantize:
        kwargs["quantization_config"] = build_quantization_config(dtype)
        kwargs["device_map"] = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    if quantize and device.type == "cpu" and spec.for_training:
        disable_cpu_4bit_repacking(model)
    if not quantize:
        model.to(device)

    tokenizer_path = Path(spec.adapter_path) if spec.adapter_path and (Path(spec.adapter_path) / "tokenizer.json").exists() else base_path
    tokenizer = load_tokenizer(tokenizer_path)

    if spec.adapter_path is not None:
        from peft import PeftModel

        # The base is passed explicitly: adapter_config.json stores the base path as it was at training time.
        model = PeftModel.from_pretrained(model, str(spec.adapter_path), is_trainable=spec.for_training)
    if not spec.for_training:
        model.eval()

    manifest = read_manifest(base_path.parent) or read_manifest(base_path)
    adapter_manifest = read_manifest(Path(spec.adapter_path)) if spec.adapter_path else {}
    version = (
        adapter_manifest.get("version")
        or manifest.get("version")
        or _content_version(*(p for p in (base_path, spec.adapter_path) if p is not None))
    )
    identity = ModelIdentity(
        base_model=manifest.get("base_model") or base_path.name,
        adapter=(adapter_manifest.get("adapter") or Path(spec.adapter_path).name) if spec.adapter_path else None,
        version=str(version),
    )
    max_new_tokens = int(adapter_manifest.get("max_answer_tokens") or manifest.get("max_answer_tokens") or DEFAULT_MAX_NEW_TOKENS)
    return LoadedModel(model=model, tokenizer=tokenizer, identity=identity, device=device, max_new_tokens=max_new_tokens)
