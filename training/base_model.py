"""The project's own small base model: a Llama-architecture LM pretrained on receipt-domain text.

No model hub is reachable here, so the base that production gets from Llama-3-8B is built locally:
a small LlamaConfig trained from scratch, full-parameter. A 4.5M-parameter model knows nothing, so
its pretraining is the task itself on an independent synthetic draw (another seed than the adapter's
data, held-out items removed): the stand-in for what a large base already knows. The LoRA adapter
is then trained on the train split through training/sft.py, the production path.
Measured before settling on this: with raw strings and answers as separate LM documents (56k docs,
6.7 min), LoRA (r=32, lr 2e-3) was still at 0.9 loss per answer token after 300 steps; with
12k prompt+answer documents and loss on every token the adapter started at 2.9.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Trainer, TrainingArguments

from model.loader import MANIFEST_NAME
from training.examples import LabeledExample


@dataclass(frozen=True)
class BaseModelConfig:
    # Every width a multiple of 32: bitsandbytes' CPU 4-bit kernels assert on other widths (ml-on-cpu.md).
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    max_position_embeddings: int = 256
    learning_rate: float = 2e-3
    epochs: float = 3.0
    batch_size: int = 32
    seed: int = 1234


def pretrain_base(
    examples: list[LabeledExample], tokenizer: PreTrainedTokenizerFast, out_dir: Path, config: BaseModelConfig
) -> dict:
    # Same tokenization, label masking and padding as fine-tuning.
    from training.sft import AnswerOnlyDataset, PadCollator

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
    dataset = AnswerOnlyDataset(examples, tokenizer, config.max_position_embeddings)
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
