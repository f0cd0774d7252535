"""Confidence per answer field: raw signals from decoding and the lexicon, calibrated on held-out items
(pure: no torch).

Raw signals (``Signals``), per item:
- product: the probability the decoder gave the product's first word (the product of its tokens'
  probabilities, after the answer constraints and the lexicon's prior, model/answer_constraints.py);
- category: the probability of the category's tokens;
- brand: by where the brand came from (``brand_basis``): ``lexicon`` (a known alias printed in the
  string; the signal is the alias's evidence, model/lexicon.py), ``lexicon_agreed`` (the same, and the model
  wrote that brand too), ``model`` (the model's brand, grounded;
  its tokens' probability), ``none`` (the model wrote no brand; the probability of that) or ``dropped``
  (the model's brand was not printed in the string and was dropped; its probability).
A raw probability is not a calibrated one (a small model is sure of wrong answers), so each signal goes
through a monotone map fitted on the validation split when the model is built (isotonic regression by
pool-adjacent-violators), kept beside the adapter as ``calibration.json``. The confidence of a field is
the estimated probability that the field is right under the real-receipt rules (training/scoring.py).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CALIBRATION_NAME = "calibration.json"
# 2: ties pooled before PAV (fit_isotonic); a format-1 file holds the miscalibrated maps and is refused.
FORMAT = 2
BRAND_BASES = ("lexicon_agreed", "lexicon", "model", "none", "dropped")
GROUPS = ("product", "category", *(f"brand:{basis}" for basis in BRAND_BASES))


@dataclass(frozen=True, slots=True)
class Signals:
    product: float
    category: float
    brand: float
    brand_basis: str

    def group_values(self) -> dict[str, float]:
        return {"product": self.product, "category": self.category, f"brand:{self.brand_basis}": self.brand}


@dataclass(frozen=True, slots=True)
class FieldConfidence:
    product: float
    brand: float
    category: float


@dataclass(frozen=True)
class IsotonicMap:
    """A non-decreasing step function: ``ys[i]`` from ``xs[i]`` on (``ys[0]`` below ``xs[0]``)."""

    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def __call__(self, value: float) -> float:
        if not self.xs:
            return value
        return self.ys[max(bisect.bisect_right(self.xs, value) - 1, 0)]


def fit_isotonic(scores: Sequence[float], outcomes: Sequence[bool]) -> IsotonicMap:
    """Pool adjacent violators over the items' distinct scores; each block's rate is smoothed (+0.5 / +1),
    so a block of three right items says 0.875, not a certain 1.0. Items of one score are one block from the
    start: pooled one by one, the wrong items at a score (sorted first) merged down into the block below and
    left the right ones a block of their own (422 validation products at the top score, 88% right, said 0.999)."""
    tallies: dict[float, list[float]] = {}
    for score, right in zip(scores, outcomes):
        tally = tallies.setdefault(score, [0.0, 0.0])
        tally[0] += right
        tally[1] += 1
    blocks: list[list[float]] = []  # [first score, right, count]
    for score in sorted(tallies):
        blocks.append([score, *tallies[score]])
        while len(blocks) > 1 and blocks[-2][1] / blocks[-2][2] >= blocks[-1][1] / blocks[-1][2]:
            _, right_last, count_last = blocks.pop()
            blocks[-1][1] += right_last
            blocks[-1][2] += count_last
    return IsotonicMap(tuple(b[0] for b in blocks), tuple((b[1] + 0.5) / (b[2] + 1.0) for b in blocks))


@dataclass(frozen=True)
class Calibration:
    maps: dict[str, IsotonicMap] = field(default_factory=dict)

    def confidence(self, signals: Signals) -> FieldConfidence:
        """Calibrated field confidences; a group without a fitted map keeps its raw signal."""

        def calibrated(group: str, value: float) -> float:
            mapping = self.maps.get(group)
            return round(min(max(mapping(value) if mapping else value, 0.0), 1.0), 4)

        return FieldConfidence(
            product=calibrated("product", signals.product),
            brand=calibrated(f"brand:{signals.brand_basis}", signals.brand),
            category=calibrated("category", signals.category),
        )

    def to_json(self) -> dict:
        return {"format": FORMAT, "maps": {g: {"xs": list(m.xs), "ys": list(m.ys)} for g, m in sorted(self.maps.items())}}

    def write(self, directory: Path) -> Path:
        path = directory / CALIBRATION_NAME
        path.write_text(json.dumps(self.to_json(), indent=1), encoding="utf-8")
        return path


def fit_calibration(signals: Sequence[Signals], right: Sequence[dict[str, bool]], min_items: int = 20) -> Calibration:
    """One isotonic map per group (``GROUPS``) with at least ``min_items`` items; ``right`` holds, per item,
    whether its product, brand and category were right."""
    points: dict[str, tuple[list[float], list[bool]]] = {}
    for signal, outcome in zip(signals, right, strict=True):
        for group, value in signal.group_values().items():
            xs, ys = points.setdefault(group, ([], []))
            xs.append(value)
            ys.append(outcome[group.split(":")[0]])
    return Calibration({g: fit_isotonic(xs, ys) for g, (xs, ys) in points.items() if len(xs) >= min_items})


def read_calibration(*directories: Path) -> Calibration | None:
    """The first ``calibration.json`` found; none: confidences stay raw signals (and say so in the docs)."""
    for directory in directories:
        path = directory / CALIBRATION_NAME
        if path.exists():
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
                if document.get("format") != FORMAT:
                    raise ValueError(f"format {document.get('format')!r}, this code reads format {FORMAT}")
                return Calibration(
                    {g: IsotonicMap(tuple(m["xs"]), tuple(m["ys"])) for g, m in document["maps"].items()}
                )
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path}: not a readable calibration ({error}); rebuild with python -m training.build_default_model") from error
    return None


def reliability(confidences: Sequence[float], outcomes: Sequence[bool], bins: int = 10) -> list[dict[str, float]]:
    """Equal-width confidence bins: each bin's item count, mean confidence and share right."""
    rows = []
    for index in range(bins):
        low, high = index / bins, (index + 1) / bins
        inside = [(c, o) for c, o in zip(confidences, outcomes) if low <= c < high or (index == bins - 1 and c == 1.0)]
        if inside:
            rows.append(
                {
                    "low": low,
                    "high": high,
                    "items": len(inside),
                    "confidence": sum(c for c, _ in inside) / len(inside),
                    "right": sum(o for _, o in inside) / len(inside),
                }
            )
    return rows


def expected_calibration_error(confidences: Sequence[float], outcomes: Sequence[bool], bins: int = 10) -> float:
    """Σ over bins of (items in bin / all items) · |mean confidence − share right|."""
    total = len(confidences)
    if not total:
        return 0.0
    return sum(row["items"] / total * abs(row["confidence"] - row["right"]) for row in reliability(confidences, outcomes, bins))
