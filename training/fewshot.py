"""Zero- and few-shot prompts: the base model asked without an adapter, the seed article's baseline.

The prompt is an instruction, optionally the taxonomy's category names, ``k`` solved examples in
the serving format, and then the serving prompt itself. Because it ends with the serving prompt,
the service's Enricher and parser run unchanged: the baseline only prepends a fixed prefix.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from schemas.taxonomy import Taxonomy
from training.examples import LabeledExample

# Kept short on purpose: 43 tokens with the project's receipt tokenizer, where a fuller sentence took 78
# and pushed three shots past the small model's 256-token context.
INSTRUCTION = "Раскрой сокращения в позиции чека. Ответ: название##товар##бренд или -##категория.\n"


def fewshot_prefix(shots: Sequence[LabeledExample], taxonomy: Taxonomy, list_categories: bool = True) -> str:
    """Everything before the item's own prompt.

    Listing the categories is what lets a general base answer with our names at all; it costs
    about 190 tokens with the project's 4k tokenizer, more than the default small model's
    256-token context leaves once shots are added.
    """
    categories = "Категории: " + "; ".join(c.name for c in taxonomy.categories) + ".\n" if list_categories else ""
    solved = "".join(f"{shot.prompt()}{shot.answer(taxonomy)}\n" for shot in shots)
    return INSTRUCTION + categories + solved


# Three shots of up to this many characters leave room for the query and the answer in a 256-token context.
SHOT_MAX_CHARS = 90


def select_shots(
    examples: Sequence[LabeledExample], k: int, seed: int = 0, max_chars: int = SHOT_MAX_CHARS
) -> list[LabeledExample]:
    """``k`` short examples (raw name + answer up to ``max_chars``) from distinct categories, the same for the same input and seed."""
    shuffled = [e for e in examples if len(e.raw_name) + len(e.normalized_name) + len(e.product) + len(e.brand or "-") <= max_chars]
    random.Random(seed).shuffle(shuffled)
    shots: list[LabeledExample] = []
    seen: set[str] = set()
    for example in shuffled:
        if len(shots) == k:
            break
        if example.category not in seen:
            seen.add(example.category)
            shots.append(example)
    if len(shots) < k:
        raise ValueError(
            f"asked for {k} shots from distinct categories, the examples of up to {max_chars} characters hold only {len(shots)}"
        )
    return shots
