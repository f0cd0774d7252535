"""Synthetic training pairs: catalog entries printed the way cash registers print them.

``python -m training.synth --count 20000 --seed 1234 --out data/synth.jsonl``
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

from model.grounding import brand_is_grounded, to_cyrillic
from training.catalog import BY_WEIGHT, ProductType, load_catalog
from training.examples import LabeledExample, write_jsonl
from training.noise import (
    NoiseConfig,
    cut_word,
    drop_vowels,
    format_size,
    is_latin,
    to_latin,
    typo,
)

# Branded product types are sometimes sold or printed without a visible brand; the model must learn
# to answer "no brand" then instead of inventing one.
UNBRANDED_SHARE = 0.12


def _noisy_words(rng: random.Random, text: str, config: NoiseConfig) -> str:
    words = []
    for word in text.split():
        if rng.random() < config.cut_word:
            word = cut_word(rng, word)
        elif rng.random() < config.drop_vowels:
            word = drop_vowels(word)
        words.append(word)
    return " ".join(words)


def _brand_text(rng: random.Random, brand: str, config: NoiseConfig) -> str:
    text = brand
    if rng.random() < config.brand_transliterated:
        if is_latin(brand):
            text = to_cyrillic(brand)
        elif rng.random() < 0.05:
            text = to_latin(brand)
    if rng.random() < config.brand_cut:
        text = " ".join(cut_word(rng, w) for w in text.split())
    if rng.random() < config.brand_quoted:
        text = f'"{text}"'
    return text


def render_raw(
    rng: random.Random, product: ProductType, brand: str | None, variant: str | None, size: str | None, config: NoiseConfig
) -> str:
    """The register string for one item; ``None`` parts are not printed (and not in the answer either)."""
    head = rng.choice(product.abbreviations) if rng.random() < config.abbreviated_head else product.product
    parts: list[str] = [head]
    brand_text = _brand_text(rng, brand, config) if brand else None
    brand_place = rng.random()
    if brand_text and config.brand_first <= brand_place < 1 - config.brand_last:
        parts.append(brand_text)
    if variant:
        parts.append(_noisy_words(rng, variant, config))
    if size == BY_WEIGHT:
        if rng.random() < 0.5:
            parts.append("ВЕС")
    elif size:
        parts.append(format_size(rng, size, config))
    if brand_text and brand_place < config.brand_first:
        parts.insert(0, brand_text)
    elif brand_text and brand_place >= 1 - config.brand_last:
        parts.append(brand_text)

    if product.category == "dairy" and rng.random() < config.dairy_prefix:
        parts.insert(0, "БЗМЖ")
    text = " ".join(parts)
    if rng.random() < config.typo:
        text = typo(rng, text)

    case = rng.random()
    if case < config.upper_case:
        text = text.upper()
    elif case < config.upper_case + config.lower_case:
        text = text.lower()

    if rng.random() < config.truncate and len(text) > 28:
        text = text[: rng.randint(28, 40)].rstrip()
    if rng.random() < config.article_code:
        text = f"{rng.randint(10**5, 10**12 - 1)} {text}"
    tail = rng.random()
    if tail < config.quantity_tail:
        text = f"{text} {rng.choice((1, 1, 2, 0.5)):.3f} x {rng.randint(20, 3000) + rng.choice((0.0, 0.9, 0.99)):.2f}"
    elif tail < config.quantity_tail + config.piece_tail:
        text = f"{text} (шт.)"
    elif tail < config.quantity_tail + config.piece_tail + config.article_tail:
        text = f"{text} Арт. {rng.randint(10**6, 10**8 - 1)}"
    return text


def make_example(rng: random.Random, product: ProductType, config: NoiseConfig) -> LabeledExample:
    brand = rng.choice(product.brands) if product.brands and rng.random() >= UNBRANDED_SHARE else None
    # A part the register did not print cannot be in the answer: the model must not learn to invent it.
    variant = rng.choice(product.variants) if rng.random() >= config.drop_variant else None
    size = rng.choice(product.sizes) if rng.random() >= config.drop_size else None
    raw_name = render_raw(rng, product, brand, variant, size, config)
    if brand and not brand_is_grounded(brand, raw_name):
        # Truncation or typos removed the brand from the print: the label must not know it either,
        # or the model learns to invent brands (the parser drops ungrounded brands at serving time).
        brand = None
    normalized = " ".join(
        part for part in (product.product, brand, variant, None if size == BY_WEIGHT else size) if part
    )
    return LabeledExample(
        raw_name=raw_name,
        normalized_name=normalized,
        product=product.product,
        brand=brand,
        category=product.category,
    )


def generate(count: int, seed: int, noise: NoiseConfig | None = None) -> list[LabeledExample]:
    """``count`` pairs, product types drawn uniformly (breadth over volume); deterministic per seed."""
    rng = random.Random(seed)
    config = noise or NoiseConfig()
    catalog = load_catalog()
    return [make_example(rng, rng.choice(catalog), config) for _ in range(count)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    written = write_jsonl(args.out, generate(args.count, args.seed))
    print(f"wrote {written} examples to {args.out}")


if __name__ == "__main__":
    main()
