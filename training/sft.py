"""Supervised fine-tuning with (Q)LoRA: the training entrypoint.

    python -m training.sft --base_path BASE --train_file train.jsonl --output_dir runs/NAME [...]
    deepspeed training/sft.py --deepspeed deploy/deepspeed/zero2.json --base_path BASE ...

Where CUDA is present the base is loaded in NF4 with double quantization and bf16 compute
(QLoRA); on CPU it is loaded in full precision unless ``--quantize_4bit true``. Loss is computed
on the answer tokens only. ``--help`` lists every knob. The run directory holds the adapter, the
tokenizer, the exact config, the data manifest and the metrics, and is loadable by
``model.loader.load_model(ModelSpec(base_path=BASE, adapter_path=RUN_DIR))``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

if __package__ in (None, ""):  # `deepspeed training/sft.py` runs this file as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from transformers import HfArgumentParser, Trainer, TrainingArguments

from model.loader import MANIFEST_NAME, ModelSpec, build_lora_config, load_model
from schemas.taxonomy import load_taxonomy
from training.examples import LabeledExample, read_jsonl

IGNORE_INDEX = -100
# Answers get a few tokens of headroom at inference: a longer answer than any in training is already wrong.
ANSWER_TOKEN_MARGIN = 4


@dataclass
class ModelArguments:
    base_path: str = field(metadata={"help": "Local directory of the base causal LM (and its tokenizer)"})
    quantize_4bit: bool | None = field(default=None, metadata={"help": "NF4 base; default: only where CUDA is present"})
    lora_r: int = field(default=16)
    lora_alpha: int = field(default=32)
    lora_dropout: float = field(default=0.05)
    lora_target_modules: str = field(default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")
    lora_modules_to_save: str = field(default="", metadata={"help": "Comma-separated modules trained in full"})
    adapter_name: str = field(default="receipt-lora")


@dataclass
class DataArguments:
    train_file: str = field(metadata={"help": "JSONL of LabeledExample"})
    validation_file: str | None = field(default=None)
    max_seq_tokens: int = field(default=128, metadata={"help": "Drop examples whose prompt+answer exceed this"})
    max_train_examples: int | None = field(default=None)


@dataclass
class SFTTrainingArguments(TrainingArguments):
    # The seed article's settings: cosine schedule, warmup ratio 0.1, lr 5e-5 (for an 8B base).
    learning_rate: float = 5e-5
    lr_scheduler_type: str = "cosine"
    warmup_steps: float = 0.1  # transformers 5: a value below 1 is a ratio of total steps
    per_device_train_batch_size: int = 16
    per_device_eval_batch_size: int = 32
    num_train_epochs: float = 1.0
    logging_steps: int = 10
    eval_strategy: str = "steps"
    eval_steps: int = 200
    save_strategy: str = "steps"
    save_steps: int = 200
    save_total_limit: int = 2
    report_to: str = "none"
    remove_unused_columns: bool = False
    optim: str = "paged_adamw_8bit" if torch.cuda.is_available() else "adamw_torch"
    bf16: bool = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    gradient_checkpointing: bool = False
    gradient_checkpointing_kwargs: dict | str | None = field(default_factory=lambda: {"use_reentrant": False})
    resume: bool = field(default=False, metadata={"help": "Resume from the last checkpoint in output_dir"})


class AnswerOnlyDataset(torch.utils.data.Dataset):
    """prompt + answer + EOS, with labels only on the answer (the prompt is tokenized alone, as at inference)."""

    def __init__(self, examples: list[LabeledExample], tokenizer, max_tokens: int) -> None:
        taxonomy = load_taxonomy()
        self.rows: list[tuple[list[int], list[int]]] = []
        self.dropped = 0
        self.max_answer_tokens = 0
        for example in examples:
            prompt_ids = tokenizer(example.prompt())["input_ids"]
            answer_ids = tokenizer(example.answer(taxonomy), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            if len(prompt_ids) + len(answer_ids) > max_tokens:
                self.dropped += 1
                continue
            self.max_answer_tokens = max(self.max_answer_tokens, len(answer_ids))
            self.rows.append((prompt_ids + answer_ids, [IGNORE_INDEX] * len(prompt_ids) + answer_ids))

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        input_ids, labels = self.rows[index]
        return {"input_ids": input_ids, "labels": labels}


class PadCollator:
    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in batch)
        input_ids, labels, mask = [], [], []
        for row in batch:
            pad = width - len(row["input_ids"])
            input_ids.append(row["input_ids"] + [self.pad_token_id] * pad)
            labels.append(row["labels"] + [IGNORE_INDEX] * pad)
            mask.append([1] * len(row["input_ids"]) + [0] * pad)
        return {
            "input_ids": torch.tensor(input_ids),
            "labels": torch.tensor(labels),
            "attention_mask": torch.tensor(mask),
        }


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _last_checkpoint(output_dir: Path) -> str | None:
    checkpoints = sorted(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    return str(checkpoints[-1]) if checkpoints else None


def build_trainer(model_args: ModelArguments, data_args: DataArguments, training_args: SFTTrainingArguments):
    """Load the base through the serving loader, attach a fresh LoRA adapter, build the Trainer."""
    from peft import get_peft_model, prepare_model_for_kbit_training

    if training_args.deepspeed:
        import deepspeed

        # Under ZeRO-3 from_pretrained partitions the weights as it loads them (zero.Init), which reads
        # the world size from DeepSpeed's own communicator: without it, one rank of two thinks it is alone.
        _ = training_args.device
        deepspeed.init_distributed()
    loaded = load_model(
        ModelSpec(base_path=Path(model_args.base_path), quantize_4bit=model_args.quantize_4bit, for_training=True)
    )
    model, tokenizer = loaded.model, loaded.tokenizer
    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=training_args.gradient_checkpointing)
    lora = build_lora_config(
        r=model_args.lora_r,
        alpha=model_args.lora_alpha,
        dropout=model_args.lora_dropout,
        target_modules=[m for m in model_args.lora_target_modules.split(",") if m],
        modules_to_save=[m for m in model_args.lora_modules_to_save.split(",") if m] or None,
    )
    model = get_peft_model(model, lora)

    train_examples = list(read_jsonl(Path(data_args.train_file)))[: data_args.max_train_examples]
    train = AnswerOnlyDataset(train_examples, tokenizer, data_args.max_seq_tokens)
    validation = (
        AnswerOnlyDataset(list(read_jsonl(Path(data_args.validation_file))), tokenizer, data_args.max_seq_tokens)
        if data_args.validation_file
        else None
    )
    if validation is None:
        training_args.eval_strategy = "no"
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=validation,
        data_collator=PadCollator(tokenizer.pad_token_id),
    )
    return trainer, tokenizer, train, validation


def run(model_args: ModelArguments, data_args: DataArguments, training_args: SFTTrainingArguments) -> Path:
    output_dir = Path(training_args.output_dir)
    trainer, tokenizer, train, validation = build_trainer(model_args, data_args, training_args)
    resume_from = _last_checkpoint(output_dir) if training_args.resume else None
    result = trainer.train(resume_from_checkpoint=resume_from)
    # Every rank takes part in saving: under ZeRO-3 the weights are gathered from all of them.
    trainer.save_model(str(output_dir))
    metrics = {"train": result.metrics, "log_history": trainer.state.log_history}
    if validation is not None:
        metrics["eval"] = trainer.evaluate()
    if not trainer.is_world_process_zero():
        return output_dir

    tokenizer.save_pretrained(output_dir)
    config = {
        "model": asdict(model_args),
        "data": asdict(data_args),
        "training": json.loads(training_args.to_json_string()),
        "world_size": training_args.world_size,
        # Read from the engine, not the config file: the proof that DeepSpeed really ran this stage.
        "deepspeed_zero_stage": trainer.model_wrapped.zero_optimization_stage() if trainer.is_deepspeed_enabled else None,
    }
    (output_dir / "run_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    data_manifest = {
        "train_file": data_args.train_file,
        "train_sha256": _sha256(data_args.train_file),
        "train_examples": len(train),
        "train_dropped_over_budget": train.dropped,
        "validation_file": data_args.validation_file,
        "validation_sha256": _sha256(data_args.validation_file) if data_args.validation_file else None,
        "validation_examples": len(validation) if validation is not None else 0,
    }
    (output_dir / "data_manifest.json").write_text(json.dumps(data_manifest, indent=2), encoding="utf-8")
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    manifest = {
        "adapter": model_args.adapter_name,
        "base_model": Path(model_args.base_path).name,
        "max_answer_tokens": train.max_answer_tokens + ANSWER_TOKEN_MARGIN,
    }
    (output_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return output_dir


def parse_args(argv: list[str] | None = None):
    parser = HfArgumentParser((ModelArguments, DataArguments, SFTTrainingArguments))
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv: list[str] | None = None) -> None:
    model_args, data_args, training_args = parse_args(argv)
    print(run(model_args, data_args, training_args))


if __name__ == "__main__":
    main()
