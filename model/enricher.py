"""Raw item names in, parsed answers out: prompt → one batched generation → parse."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from model.parser import ParsedAnswer, parse_answer
from model.prompt import build_prompt
from schemas.taxonomy import Taxonomy


class ModelBatchFailed(RuntimeError):
    """Generation failed for a whole batch (out of memory, a kernel error, a wrong answer count)."""

    def __init__(self, batch_size: int, reason: str) -> None:
        super().__init__(f"model failed on a batch of {batch_size} items: {reason}")
        self.batch_size = batch_size
        self.reason = reason


class Generator(Protocol):
    def generate(self, prompts: Sequence[str]) -> list[str]: ...


class Enricher:
    def __init__(self, generator: Generator, taxonomy: Taxonomy) -> None:
        self._generator = generator
        self._taxonomy = taxonomy

    def enrich(self, raw_names: Sequence[str]) -> list[ParsedAnswer]:
        """Enrich one batch in a single generation call; raises ModelBatchFailed, never returns partial."""
        if not raw_names:
            return []
        try:
            answers = self._generator.generate([build_prompt(name) for name in raw_names])
        except RuntimeError as error:  # torch reports OOM and kernel failures as RuntimeError subclasses
            raise ModelBatchFailed(len(raw_names), f"{type(error).__name__}: {error}") from error
        if len(answers) != len(raw_names):
            raise ModelBatchFailed(len(raw_names), f"got {len(answers)} answers")
        return [parse_answer(answer, name, self._taxonomy) for answer, name in zip(answers, raw_names)]
