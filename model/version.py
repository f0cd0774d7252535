"""The model version: a hash of the files that decide its answers (pure, no torch).

The version keys the shared answer cache and is published with every answer, so it must change
whenever the weights or the tokenizer do, and only then.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

# What decides the answers: weights, the architecture and adapter configs, the tokenizer. Manifests are
# left out: they carry build timings, which differ between two builds of the same weights; so are the
# configs' `*name_or_path` fields, which hold the directory a model was built in.
_VERSIONED_FILES = (
    "config.json", "adapter_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "lexicon.json",  # the decoding priors and brand aliases from the training labels (model/lexicon.py)
    "calibration.json",  # raw signals → field confidences (model/confidence.py)
)
_VERSIONED_SUFFIXES = (".safetensors", ".bin")
# Saved beside the adapter by the Trainer: the run's arguments (output paths included), not the model.
_UNVERSIONED = ("training_args.bin",)
# PEFT keeps these as sets and writes them in the process's hash order, which differs between two runs.
_SET_VALUED = ("target_modules", "modules_to_save")


def weights_version(*directories: Path) -> str:
    """A hash of the weight, config and tokenizer files in ``directories``: the model version.

    It keys the shared answer cache, so two directories share a version only when they hold the same
    weights and tokenizer, whatever machine or build wrote them. Reading the files costs about 1 s
    per GB (an 8B base in bf16: ~16 s at start).
    """
    digest = hashlib.sha256()
    for index, directory in enumerate(directories):
        files = sorted(
            p for p in Path(directory).iterdir()
            if p.is_file() and p.name not in _UNVERSIONED and (p.name in _VERSIONED_FILES or p.suffix in _VERSIONED_SUFFIXES)
        )
        for file in files:
            digest.update(f"{index}/{file.name}\0".encode())
            digest.update(_file_digest(file))
    return "sha256-" + digest.hexdigest()[:16]


def _file_digest(file: Path) -> bytes:
    if file.suffix == ".json":
        document = json.loads(file.read_text(encoding="utf-8"))
        if isinstance(document, dict):
            document = {k: v for k, v in document.items() if not k.endswith("name_or_path")}
            for key in _SET_VALUED:
                if isinstance(document.get(key), list):
                    document[key] = sorted(document[key])
        return hashlib.sha256(json.dumps(document, sort_keys=True, ensure_ascii=False).encode()).digest()
    with file.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").digest()
