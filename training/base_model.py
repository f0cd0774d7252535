"""The project's own small base model: a Llama-architecture LM pretrained on receipt-domain text.

No model hub is reachable here, so the base that production gets from Llama-3-8B is built locally:
a small LlamaConfig trained from scratch, full-parameter, on receipt-domain documents. A 4.5M
model knows nothing, so its documents include prompt-and-answer pairs from an independent synthetic
draw (another seed than the adapter's data): the stand-in for what a large base already knows.
The LoRA adapter is then trained on the train split through training/sft.py, the production path.
Measured (models/default/manifest.json): with raw strings and answers as separate documents only,
LoRA (r=32, lr 2e-3) plateaued at 0.9 loss per answer token after 300 steps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Trainer, TrainingArguments

from model.loader import MANIFEST_NAME


@dataclass(frozen=True)
class BaseModelConfig:
    # Every width a multiple of 32: bitsandbytes' CPU 4-bit kernels assert on other widths (ml-on-cpu.md).
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_position_embeddings: int = 256
    learning_rate: float = 1e-3
    epochs: float = 1.0
    batch_size: int = 32
    seed: int = 1234


class _TextDataset(torch.utils.data.Dataset):
    def __init__(self, texts: list[str], tokenizer: PreTrainedTokenizerFast, max_tokens: int) -> None:
        eos = tokenizer.eos_token_id
        self.rows = [ids[: max_tokens - 1] + [eos] for ids in tokenizer(texts)["input_ids"]]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return {"input_ids": self.rows[index], "labels": self.rows[index]}


def pretrain_base(texts: list[str], tokenizer: PreTrainedTokenizerFast, out_dir: Path, config: BaseModelConfig) -> dict:
    from training.sft import PadCollator  # same padding and label masking as fine-tuning

    torch.manual_seed(config.seed)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            num_key_value_heads=config.num_attention_heads,
            max_position_embeddings=config.max_position_embeddings,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=True,
        )
    )
    dataset = _TextDataset(texts, tokenizer, config.max_position_embeddings)
    args = TrainingArguments(
        output_dir=str(out_dir / "_checkpoints"),
        per_device_train_batch_size=config.batch_size,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        weight_decay=0.01,
        logging_steps=50,
        save_strategy="no",
        report_to="none",
        use_cpu=not torch.cuda.is_available(),
        seed=config.seed,
        data_seed=config.seed,
        remove_unused_columns=False,
        disable_tqdm=False,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=PadCollator(tokenizer.pad_token_id))
    result = trainer.train()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    parameters = sum(p.numel() for p in model.parameters())
    summary = {
        "base_model": out_dir.name,
        "parameters": parameters,
        "documents": len(dataset),
        "train_loss": result.metrics.get("train_loss"),
        "train_seconds": result.metrics.get("train_runtime"),
    }
    (out_dir / MANIFEST_NAME).write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
