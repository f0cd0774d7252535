"""What a generator is to the Enricher: prompts in, one answer each out, within a deadline.

The contract between model/enricher.py and the generators that keep it (model/generation.py's static
batches, model/continuous_generation.py's continuous batching), kept below all of them: ``Generator``,
``GenerationTimeout``, and ``prompts``, the prompts a batch is generated from. No torch here: the
service's pure stages import the enricher, which imports this module.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from model.prompt import build_prompt


class GenerationTimeout(RuntimeError):
    """A generator stopped a batch at its deadline; the answers it had so far are incomplete."""


class Generator(Protocol):
    def generate(self, prompts: Sequence[str]) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class ScoredAnswer:
    """An answer with the probabilities the decoder gave its decisions (model/confidence.py): the product's
    first word, the brand field, the category; ``None`` where the answer lacks the field."""

    text: str
    product: float | None
    brand: float | None
    category: float | None


class ScoringGenerator(Generator, Protocol):
    """A generator that also reports how sure it was (model/generation.py's static batches)."""

    def generate_scored(self, prompts: Sequence[str]) -> list[ScoredAnswer | str]: ...


# The service counts a batch's prompt tokens in its prepare thread and generates from the same prompts in
# the model thread moments later: cached, an item name is cleaned (model.prompt.clean_raw_name) and wrapped
# once, not once per use. 16k entries as in model/item_key.py: a few MB for real names, at most tens of MB
# for hostile 512-character ones.
@functools.lru_cache(maxsize=1 << 14)
def _prompt(raw_name: str) -> str:
    return build_prompt(raw_name)


def prompts(raw_names: Sequence[str]) -> list[str]:
    """The prompt of each item name, as model.prompt.build_prompt makes it."""
    return [_prompt(name) for name in raw_names]
