"""Raw item names in, parsed answers out: prompt → one batched generation → parse."""

from __future__ import annotations

from collections.abc import Sequence

from dataclasses import replace

from model.confidence import Calibration, Signals
from model.generator import GenerationTimeout, Generator, ScoredAnswer, prompts
from model.lexicon import Lexicon, brand_key
from model.parser import ParsedAnswer, parse_answer
from model.prompt import FIELD_SEPARATOR, NO_BRAND
from schemas.taxonomy import Taxonomy


class ModelBatchFailed(RuntimeError):
    """Generation failed for a whole batch (out of memory, a kernel error, a timeout, a wrong answer count).

    ``kind`` is one of FAILURE_KINDS, a bounded set an error counter can be labelled with.
    """

    def __init__(self, batch_size: int, reason: str, kind: str = "error") -> None:
        super().__init__(f"model failed on a batch of {batch_size} items ({kind}): {reason}")
        self.batch_size = batch_size
        self.reason = reason
        self.kind = kind


FAILURE_KINDS = ("timeout", "out_of_memory", "answer_count", "error")


_OOM_MESSAGES = ("out of memory", "not enough memory", "can't allocate memory")


def _failure_kind(error: Exception) -> str:
    if isinstance(error, GenerationTimeout):
        return "timeout"
    # torch.OutOfMemoryError on CUDA; older CPU allocators raise a plain RuntimeError saying so.
    text = str(error).lower()
    if type(error).__name__ == "OutOfMemoryError" or any(m in text for m in _OOM_MESSAGES):
        return "out_of_memory"
    return "error"


class Enricher:
    def __init__(
        self,
        generator: Generator,
        taxonomy: Taxonomy,
        lexicon: Lexicon | None = None,
        calibration: Calibration | None = None,
    ) -> None:
        """``lexicon``: the model's (LoadedModel.lexicon) for brand aliases; none: the model's grounded brand only.
        ``calibration``: the model's (LoadedModel.calibration); none: confidences are the raw signals."""
        self._generator = generator
        self._taxonomy = taxonomy
        self._lexicon = lexicon
        self._calibration = calibration or Calibration()

    def enrich(self, raw_names: Sequence[str]) -> list[ParsedAnswer]:
        """Enrich one batch in a single generation call; raises ModelBatchFailed, never returns partial."""
        if not raw_names:
            return []
        try:
            generate_scored = getattr(self._generator, "generate_scored", None)
            if generate_scored is not None:
                answers: list[ScoredAnswer | str] = generate_scored(prompts(raw_names))
            else:
                answers = self._generator.generate(prompts(raw_names))
        except Exception as error:
            # Whatever one batch raises (OOM, a kernel error, a tokenizer failing on odd text) stays with
            # that batch: it is split and retried. Escaping, it would fail the take and the worker would
            # replay the same take into the same error forever.
            raise ModelBatchFailed(len(raw_names), f"{type(error).__name__}: {error}", _failure_kind(error)) from error
        if len(answers) != len(raw_names):
            raise ModelBatchFailed(len(raw_names), f"got {len(answers)} answers", "answer_count")
        return [self._parse(answer, name) for answer, name in zip(answers, raw_names)]

    def _parse(self, answer: ScoredAnswer | str, raw_name: str) -> ParsedAnswer:
        """A plain text answer (a generator that reports no probabilities) gets no confidence; a scored one
        always does, a field it lacks counting as probability 0."""
        # Looked up once: the parser takes the brand from it, the confidence its evidence.
        known = self._lexicon.brand_in(raw_name) if self._lexicon is not None else None
        if isinstance(answer, str):
            return parse_answer(answer, raw_name, self._taxonomy, known)
        parsed = parse_answer(answer.text, raw_name, self._taxonomy, known)
        fields = answer.text.split(FIELD_SEPARATOR)
        written = fields[2].strip() if len(fields) > 2 else ""
        if known is not None:
            # The model writing the same brand is evidence of its own: calibrated apart (model/confidence.py).
            basis = "lexicon_agreed" if brand_key(written) == brand_key(known.brand) else "lexicon"
            brand_signal = known.evidence
        else:
            basis = "model" if parsed.brand else ("none" if written in ("", NO_BRAND) else "dropped")
            brand_signal = answer.brand if answer.brand is not None else 0.0
        signals = Signals(answer.product or 0.0, answer.category or 0.0, brand_signal, basis)
        return replace(parsed, signals=signals, confidence=self._calibration.confidence(signals))
