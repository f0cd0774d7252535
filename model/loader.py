"""Load the base model (NF4 4-bit where CUDA is present), its tokenizer and the LoRA adapter.

Training and serving build the quantization and LoRA configs through the same functions here
(TRL's ``get_quantization_config`` / ``get_peft_config`` habit), so the service loads the model
exactly as it was trained.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, PreTrainedTokenizerBase

from model.confidence import Calibration, read_calibration
from model.lexicon import Lexicon, read_lexicon
from model.version import weights_version
from schemas.events import ModelIdentity

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
BUILD_COMMAND = "python -m training.build_default_model"
# Only for a model directory without a manifest (e.g. a merged model from elsewhere): four short fields.
FALLBACK_MAX_NEW_TOKENS = 64
LORA_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class ModelNotFound(FileNotFoundError):
    """A local model path that does not exist or holds no model; a hub lookup would only burn time here."""


class DeviceUnavailable(RuntimeError):
    """The requested device is not present on this machine."""


@dataclass(frozen=True)
class ModelSpec:
    base_path: Path
    adapter_path: Path | None = None
    device: str = "auto"
    quantize_4bit: bool | None = None  # None: NF4 exactly where CUDA is present
    compute_dtype: str = "auto"  # auto: bf16 (fp16 on older GPUs) on CUDA, float32 on CPU
    # Training and merging need trainable adapters and the CPU 4-bit repacking trap disabled.
    for_training: bool = False
    # Serving only: fold the LoRA deltas into the base weights at load, so every projection is one
    # matmul instead of base + two low-rank ones. Merging needs a full-precision base (see load_model).
    merge_adapter: bool = False


@dataclass
class LoadedModel:
    model: Any
    tokenizer: PreTrainedTokenizerBase
    identity: ModelIdentity
    device: torch.device
    max_new_tokens: int
    merged: bool = False
    # What the training labels say about words: decoding priors and brand aliases (model/lexicon.py).
    lexicon: Lexicon = field(default_factory=Lexicon)
    # Maps raw decoding signals to calibrated field confidences (model/confidence.py); None: raw signals.
    calibration: Calibration | None = None


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceUnavailable(f"device {device!r} was requested but torch sees no CUDA device; use 'cpu' or 'auto'")
    return torch.device(device)


def resolve_compute_dtype(name: str, device: torch.device) -> torch.dtype:
    """QLoRA's compute type: bf16 on GPUs that have it; float32 on CPU, where bf16 gains little here."""
    if name != "auto":
        if name not in _DTYPES:
            raise ValueError(f"compute_dtype {name!r} is not one of auto, {', '.join(_DTYPES)}")
        return _DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def build_quantization_config(compute_dtype: torch.dtype) -> BitsAndBytesConfig:
    """NF4 with double quantization (QLoRA): the base as stored for training and for serving."""
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def build_lora_config(
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.05,
    target_modules: tuple[str, ...] | list[str] = LORA_TARGET_MODULES,
    modules_to_save: list[str] | None = None,
):
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
    silently wrong and merge_and_unload gives garbage (measured on a
    2-core AVX512-BF16 Xeon: 99% → 84% exact match; bitsandbytes warns only that `gemv_4bit` has no
    autograd kernel). Costs 10–20% generation speed, so it is applied only for training and merging.
    Returns the number of 4-bit layers it changed.
    """
    import bitsandbytes

    layers = [m for m in model.modules() if isinstance(m, bitsandbytes.nn.Linear4bit)]
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
    return len(layers)


def read_manifest(directory: Path) -> dict[str, Any]:
    manifest = directory / MANIFEST_NAME
    return json.loads(manifest.read_text(encoding="utf-8")) if manifest.exists() else {}


def _require(path: Path, marker: str, what: str) -> None:
    if not (path / marker).exists():
        problem = "not found" if not path.exists() else f"holds no {marker}"
        raise ModelNotFound(
            f"{what} {problem} at {path}. Build the project's default model with `{BUILD_COMMAND}`, "
            "or point ENRICHER_MODEL_BASE_PATH / ENRICHER_MODEL_ADAPTER_PATH at a local model directory."
        )


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.padding_side = "left"  # right padding in batched greedy generation ruins answers (91% → 47%)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _identity(base_path: Path, adapter_path: Path | None) -> tuple[ModelIdentity, dict[str, Any]]:
    """Names from the manifests the build writes (model dir, base, adapter); the version from the files loaded."""
    model_manifest = read_manifest(base_path.parent)
    base_manifest = read_manifest(base_path)
    adapter_manifest = read_manifest(adapter_path) if adapter_path else {}
    identity = ModelIdentity(
        base_model=model_manifest.get("base_model") or base_manifest.get("base_model") or base_path.name,
        adapter=(adapter_manifest.get("adapter") or adapter_path.name) if adapter_path else None,
        version=weights_version(*(p for p in (base_path, adapter_path) if p is not None)),
    )
    return identity, {**model_manifest, **base_manifest, **adapter_manifest}


def load_model(spec: ModelSpec) -> LoadedModel:
    """Base (+ adapter) and tokenizer from local directories; raises ModelNotFound before any hub lookup."""
    base_path = Path(spec.base_path)
    adapter_path = Path(spec.adapter_path) if spec.adapter_path is not None else None
    _require(base_path, "config.json", "base model")
    if adapter_path is not None:
        _require(adapter_path, "adapter_config.json", "LoRA adapter")
    device = resolve_device(spec.device)
    dtype = resolve_compute_dtype(spec.compute_dtype, device)
    quantize = device.type == "cuda" if spec.quantize_4bit is None else spec.quantize_4bit
    if spec.merge_adapter:
        _check_mergeable(spec, adapter_path)
        # Merged into NF4 weights the LoRA deltas are rounded away, and on AVX512-BF16 CPUs the
        # repacked 4-bit layout merges into garbage (0% exact
        # match, measured on a 2-core AVX512-BF16 Xeon): merge in bf16/fp32.
        quantize = False

    kwargs: dict[str, Any] = {"dtype": dtype, "local_files_only": True}
    if quantize:
        kwargs["quantization_config"] = build_quantization_config(dtype)
        kwargs["device_map"] = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
    if quantize and device.type == "cpu" and spec.for_training:
        disable_cpu_4bit_repacking(model)
    if not quantize:
        model.to(device)

    # A run directory carries the tokenizer it was trained with; prefer it over the base's.
    has_own_tokenizer = adapter_path is not None and (adapter_path / "tokenizer.json").exists()
    tokenizer = load_tokenizer(adapter_path if has_own_tokenizer else base_path)

    if adapter_path is not None:
        from peft import PeftModel

        # The base is passed explicitly: adapter_config.json stores the base path as it was at training time.
        model = PeftModel.from_pretrained(model, str(adapter_path), is_trainable=spec.for_training)
        if spec.merge_adapter:
            model = model.merge_and_unload()
    if not spec.for_training:
        model.eval()

    identity, manifest = _identity(base_path, adapter_path)
    max_new_tokens = manifest.get("max_answer_tokens")
    if max_new_tokens is None:
        log.warning("model_manifest_missing base=%s max_new_tokens=%d", base_path, FALLBACK_MAX_NEW_TOKENS)
        max_new_tokens = FALLBACK_MAX_NEW_TOKENS
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        identity=identity,
        device=device,
        max_new_tokens=int(max_new_tokens),
        merged=spec.merge_adapter,
        lexicon=read_lexicon(*(p for p in (adapter_path, base_path) if p is not None)),
        calibration=read_calibration(*(p for p in (adapter_path, base_path) if p is not None)),
    )


def _check_mergeable(spec: ModelSpec, adapter_path: Path | None) -> None:
    if adapter_path is None:
        raise ValueError("merge_adapter (ENRICHER_MERGE_ADAPTER) needs an adapter path to merge; unset it to serve the base alone")
    if spec.for_training:
        raise ValueError("merge_adapter is for serving; training needs the adapter separate from the base")
    if spec.quantize_4bit:
        raise ValueError(
            "merge_adapter cannot merge into a 4-bit base (the deltas are lost in NF4 rounding); set "
            "ENRICHER_QUANTIZE_4BIT=false to serve the merged model in bf16/fp32"
        )
