"""Which span of an item string is its brand, or none: a log-linear ranker (pure: no torch).

The options are "no brand" and every span of up to ``longest`` brand words the string prints (the
brand field's grammar, model/answer_constraints.py). Each gets features: how likely its words are brand
words and its neighbours not (the lexicon's brand-word records, model/lexicon.py), whether it is a known
alias and how often that alias meant its brand, its length and place, Latin or quoted, digits, whether it
holds the product's likeliest head noun; "no brand" gets how unlikely a brand the string's words are.
The score is a weighted sum, the prior the softmax over the options; the weights are fitted on the
training labels (training/rankers.py) and kept in the lexicon. Measured: docs/model.md.
"""

from __future__ import annotations

import math
import re

from model.head_ranker import likeliest_head
from model.lexicon import Lexicon, brand_key, spans
from model.log_linear import log_normalised, weighted

NO_BRAND_OPTION = ""
_DIGIT = re.compile(r"\d")
# Without fitted weights the ranker is the brand-word prior itself: a span's words are brand words and its
# neighbours are not; "no brand" that none is.
_PRIOR_ONLY = {"prior": 1.0, "none:prior": 1.0}


def brand_options(
    lexicon: Lexicon, item: str, longest: int, leave_out: bool = False, brand: str | None = None, head: str | None = None
) -> dict[str, dict[str, float]]:
    """The options of ``item`` (spans as the model writes them, lower case; ``NO_BRAND_OPTION``) with their
    features. ``leave_out``: ``item`` is a training item labelled with ``brand``, whose own counts are
    taken out of the lexicon's records. ``head``: the product's likeliest head noun, when already known."""
    item = item.lower()
    probabilities = lexicon.brand_word_probabilities(item, leave_out, brand)
    words = [word for word, _, _ in probabilities]
    features = [feature for _, feature, _ in probabilities]
    yes = [math.log(max(p, 1e-6)) for _, _, p in probabilities]
    no = [math.log(max(1.0 - p, 1e-6)) for _, _, p in probabilities]
    if head is None:
        head = likeliest_head(lexicon, item)
    label = brand_key(brand or "")
    options = {
        NO_BRAND_OPTION: {
            "none": 1.0,
            "none:prior": sum(no),
            "none:latin": float(any(f.startswith("L") for f in features)),
            "none:words": min(len(words), 8) / 8,
        }
    }
    for start, end in spans(words, longest):
        span = " ".join(words[start:end])
        x = {
            "prior": sum(yes[start:end]) + (no[start - 1] if start else 0.0) + (no[end] if end < len(words) else 0.0),
            f"words:{end - start}": 1.0,
            f"start:{min(start, 3)}": 1.0,
            f"first:{features[start][:2]}": 1.0,
        }
        if end == len(words):
            x["last"] = 1.0
        if all(f.startswith("L") for f in features[start:end]):
            x["latin"] = 1.0
        if "q" in features[start]:
            x["quoted"] = 1.0
        if any(_DIGIT.search(word) for word in words[start:end]):
            x["digits"] = 1.0
        if head and any(len(word) >= 3 and head.startswith(word[:4]) for word in words[start:end]):
            x["holds_head"] = 1.0
        known = lexicon.brands.get(brand_key(span))
        if known is not None:
            canonical, hits, seen = known
            if leave_out:
                # The item's own string is one of those the alias's record counts.
                hits, seen = hits - (brand_key(canonical) == label), seen - 1
            if seen > 0:
                x["alias"] = 1.0
                x["alias:evidence"] = (hits + 0.5) / (seen + 1.0)
                x["alias:log_seen"] = math.log1p(seen)
        if span not in options or x["prior"] > options[span]["prior"]:
            options[span] = x
    return options


def brand_log_priors(lexicon: Lexicon, item: str, longest: int, head: str | None = None) -> tuple[dict[str, float], float]:
    """log P(the brand is this span) for the item's spans of up to ``longest`` words, and log P(no brand)."""
    options = brand_options(lexicon, item, longest, head=head)
    priors = log_normalised(weighted(lexicon.brand_weights or _PRIOR_ONLY, options))
    none = priors.pop(NO_BRAND_OPTION)
    return priors, none
