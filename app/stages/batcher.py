"""Cut the line items of one take into model batches: bounded by items and padded tokens, deduplicated.

Pure bookkeeping (the vLLM scheduler idea): token counts come in as numbers, batches go out as lists.
A batch's cost is what the GPU really computes with left padding: every row is as long as the
longest prompt plus the answer budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BatchLimits:
    max_items: int
    max_tokens: int
    answer_tokens: int

    def __post_init__(self) -> None:
        if self.max_items < 1 or self.max_tokens < 1 or self.answer_tokens < 0:
            raise ValueError(f"batch limits must be positive: {self}")


@dataclass(frozen=True, slots=True)
class ModelBatch:
    texts: tuple[str, ...]
    prompt_tokens: tuple[int, ...]

    @property
    def row_tokens(self) -> int:
        return max(self.prompt_tokens, default=0)

    def padding_waste(self) -> float:
        """Share of prompt positions that are padding."""
        total = len(self.texts) * self.row_tokens
        return 1 - sum(self.prompt_tokens) / total if total else 0.0


def plan_batches(texts: Sequence[str], prompt_tokens: Sequence[int], limits: BatchLimits) -> list[ModelBatch]:
    """Group unique texts into batches, shortest first, so rows in a batch have similar lengths.

    Every text lands in exactly one batch; a text too long for the token budget on its own still
    gets a batch of one rather than being dropped.
    """
    if len(texts) != len(prompt_tokens):
        raise ValueError("texts and prompt_tokens must have the same length")
    unique: dict[str, int] = {}
    for text, tokens in zip(texts, prompt_tokens):
        unique.setdefault(text, tokens)
    ordered = sorted(unique.items(), key=lambda pair: (pair[1], pair[0]))

    batches: list[ModelBatch] = []
    current: list[tuple[str, int]] = []
    for text, tokens in ordered:
        # Sorted ascending, so the newcomer is the longest row of the batch it joins.
        cost_with_it = (len(current) + 1) * (tokens + limits.answer_tokens)
        if current and (len(current) >= limits.max_items or cost_with_it > limits.max_tokens):
            batches.append(_batch(current))
            current = []
        current.append((text, tokens))
    if current:
        batches.append(_batch(current))
    return batches


def _batch(rows: list[tuple[str, int]]) -> ModelBatch:
    return ModelBatch(texts=tuple(t for t, _ in rows), prompt_tokens=tuple(n for _, n in rows))


def padded_tokens(prompt_tokens: Sequence[int], answer_tokens: int) -> int:
    """What a batch costs the model: rows × (longest prompt + answer budget), as ``plan_batches`` counts it."""
    return len(prompt_tokens) * (max(prompt_tokens, default=0) + answer_tokens)
