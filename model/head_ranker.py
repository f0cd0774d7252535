"""Which of an item's candidate words is the product's head noun: a log-linear ranker (pure: no torch).

The lexicon (model/lexicon.py) offers the words the product may start with. How often a word was the
head noun in training strings says much (`сок` nearly always, `персик` rarely), but not what its
neighbours say: an adjective before a noun (`камчатская соломка`), a maker's name printed first
(`растишка творожок`, `харибо зефирки`), a noun after a preposition (`с днем рождения`) or in the
instrumental (`пирожок с капустой`). The ranker scores each candidate by a weighted sum of such
features and takes the softmax over the item's candidates; the weights are fitted on the training
labels (training/rankers.py) and kept in the lexicon. On the validation split the ranker alone
picks the labelled head noun for 84% of real items, the word record alone for 78% (docs/model.md).
"""

from __future__ import annotations

import re

from model.lexicon import Lexicon, tokens
from model.log_linear import log_normalised, weighted
from model.product_noun import grammar, is_dictionary_word, is_noun

_CYRILLIC = re.compile(r"[а-я]")
# A known alias this sure of its brand marks its words as the brand's, not the product's.
_BRAND_EVIDENCE = 0.5
_LONGEST = 6


def _grammar_of(word: str) -> str:
    return grammar(word) if word and _CYRILLIC.search(word) else "none"


def candidate_features(lexicon: Lexicon, item: str, leave_out: str | None = None) -> dict[str, dict[str, float]]:
    """Each candidate head noun of ``item`` with its features. ``leave_out``: for a training item, its
    labelled head noun, whose own count is taken out of the lexicon's records (a fair fit)."""
    offers = lexicon.head_offers(item)
    printed = tokens(item)
    match = lexicon.brand_in(item)
    brand_words = set(match.alias.split()) if match is not None and match.evidence > _BRAND_EVIDENCE else set()
    cyrillic = [word for word in printed if _CYRILLIC.search(word)]
    first_noun = next((word for word in cyrillic if len(word) >= 3 and is_noun(word)), None)
    found = {}
    for candidate, (feature, word) in offers.items():
        kind, rank = feature[0], feature[1]
        x = {
            "record": lexicon.head_log_prior(candidate, feature, leave_out),
            "unseen": float(lexicon.head_seen(candidate, leave_out) <= 0),
            f"offer:{feature}": 1.0,
            f"kind:{kind}": 1.0,
            f"rank:{kind}{rank}": 1.0,
        }
        if word:
            at = printed.index(word) if word in printed else -1
            x[f"grammar:{_grammar_of(word)}"] = 1.0
            x[f"next:{_grammar_of(printed[at + 1] if 0 <= at < len(printed) - 1 else '')}"] = 1.0
            x[f"previous:{_grammar_of(printed[at - 1] if at > 0 else '')}"] = 1.0
            x[f"length:{min(len(word), _LONGEST)}"] = 1.0
            if word in brand_words:
                x["brand_alias"] = 1.0
            if word == first_noun:
                x["first_noun"] = 1.0
            if cyrillic and word == cyrillic[0]:
                x["first_cyrillic"] = 1.0
            if not is_dictionary_word(word):
                x["unknown_word"] = 1.0
        found[candidate] = x
    return found


def head_log_priors(lexicon: Lexicon, item: str) -> dict[str, float]:
    """log P(candidate is the head noun) over the item's candidates. A lexicon without ranker weights
    ranks by the word's record alone."""
    return log_normalised(weighted(lexicon.head_weights or {"record": 1.0}, candidate_features(lexicon, item)))


def likeliest_head(lexicon: Lexicon, item: str, priors: dict[str, float] | None = None) -> str:
    """The ranker's first choice ("" when the item offers none); ``priors``: ``head_log_priors``, when known."""
    priors = head_log_priors(lexicon, item) if priors is None else priors
    return max(priors, key=priors.get) if priors else ""
