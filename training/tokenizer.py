"""Train the project's byte-level BPE tokenizer on receipt text with ``tokenizers``.

    python -m training.tokenizer --data train.jsonl [--data more.jsonl] --vocab-size 8192 --out models/tok

Trained on the raw strings and the answers of labeled examples: the two kinds of text the model
reads and writes. Prints its efficiency on the raw strings (characters per token, tokens per item).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from schemas.taxonomy import load_taxonomy
from training.examples import LabeledExample, read_jsonl

BOS, EOS, PAD = "<s>", "</s>", "<pad>"


def training_texts(examples: Iterable[LabeledExample]) -> Iterable[str]:
    """Every prompt (the raw string in its serving frame) and every answer."""
    taxonomy = load_taxonomy()
    for example in examples:
        yield example.prompt()
        yield example.answer(taxonomy)


def train_tokenizer(texts: Iterable[str], vocab_size: int, out_dir: Path) -> PreTrainedTokenizerFast:
    """Byte-level BPE: every input is encodable (no unknown token), merges learned from receipts.

    BOS is prepended to every encoded text (the prompt at inference); EOS ends every training
    answer; PAD is its own token so padding never looks like the end of an answer.
    """
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
    tokenizer.post_processor = processors.TemplateProcessing(
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, action="append", required=True, help="JSONL of LabeledExample")
    parser.add_argument("--vocab-size", type=int, default=8192)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    examples = [example for path in args.data for example in read_jsonl(path)]
    tokenizer = train_tokenizer(training_texts(examples), args.vocab_size, args.out)
    report = {"vocab_size": len(tokenizer), **efficiency(tokenizer, [e.raw_name for e in examples])}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
