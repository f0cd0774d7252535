"""Train the project's byte-level BPE tokenizer on receipt text with ``tokenizers``."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD = "<s>", "</s>", "<pad>"


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: Path) -> PreTrainedTokenizerFast:
    """Byte-level BPE: every input is encodable (no unknown token), merges learned from receipts."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        min_frequency=2,
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # BOS is prepended to every prompt (TemplateProcessing); EOS ends every answer in training.
    from tokenizers.processors import TemplateProcessing

    tokenizer.post_processor = TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, tokenizer.token_to_id(BOS))]
    )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD, padding_side="left"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    wrapped.save_pretrained(out_dir)
    return wrapped


def efficiency(tokenizer: PreTrainedTokenizerFast, texts: list[str]) -> dict[str, float]:
    """Characters per token and tokens per item: tokens per item drive inference cost."""
    counts = [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]
    chars = sum(len(t) for t in texts)
    ordered = sorted(counts)
    return {
        "items": len(texts),
        "chars_per_token": round(chars / max(1, sum(counts)), 3),
        "tokens_per_item_mean": round(sum(counts) / max(1, len(counts)), 2),
        "tokens_per_item_p95": ordered[int(0.95 * (len(ordered) - 1))] if ordered else 0,
    }
