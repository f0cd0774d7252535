"""Zero- and few-shot prompts: the base model asked without an adapter, the seed article's baseline."""

from __future__ import annotations

from collections.abc import Sequence

from model.prompt import build_prompt
from schemas.taxonomy import Taxonomy
from training.examples import LabeledExample

INSTRUCTION = (
    "Раскрой сокращения в позиции чека и выдели товар, бренд и категорию. "
    "Ответ: нормализованное название##товар##бренд (или -)##категория.\n"
)


def fewshot_prompt(raw_name: str, shots: Sequence[LabeledExample], taxonomy: Taxonomy) -> str:
    """The instruction, then ``len(shots)`` solved examples in the serving format, then the query."""
    solved = "".join(f"{shot.prompt()}{shot.answer(taxonomy)}\n" for shot in shots)
    return INSTRUCTION + solved + build_prompt(raw_name)
