"""What the labelled training data says about the words of item strings (pure: no torch).

Kept beside the adapter as ``lexicon.json`` (built by training/lexicon.py from the train split, never
the gold split) and versioned with the weights. A 4.5M-parameter model trained on 10k real items
reads a string only roughly; the lexicon holds the counts that decide most answers and that such a
model learns least well:
- **head nouns**: the product's head nouns seen in labels (an abbreviation `подгуз` opens to one), how
  often each word that could start the product was the head noun (`сок` nearly always, `персик` rarely),
  and the head nouns that words imply without printing them (`хейнекен` → `пиво`, `т/б` → `бумага`);
- **categories**: how often each word occurred with each category (a naive-Bayes prior over the taxonomy);
- **brands**: aliases as registers print them (`сочн дол`, `NESCAFE`, `нескафе`) → canonical spelling,
  with how often the alias in a string meant that brand; and for brands no label named, how often each
  printed word was part of the item's brand, smoothed towards its feature (Latin or Cyrillic, known to
  the dictionary or not, quoted, rank): a Latin word nobody labelled is a brand far more often than a
  known Russian word.
The decoder (model/answer_constraints.py) adds these as log-prior biases to the model's own scores;
the parser (model/parser.py) grounds the brand in the alias table. Measured effects: docs/model.md.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from model.grounding import to_cyrillic
from model.log_linear import log_normalised
from model.product_noun import dictionary_reading, is_noun, nominative_head

LEXICON_NAME = "lexicon.json"
FORMAT = 4

# Words: letters and digits, keeping register abbreviations whole (`т/б`, `ср-во`, `п-ты`, `ш/д`).
_TOKEN = re.compile(r"[a-zа-я0-9]+(?:[/\-][a-zа-я]+)*")
_CYRILLIC_WORD = re.compile(r"[а-я]{2,}")
# Registers mix scripts inside a word (`kолбаса`, `cр-во`): Latin look-alikes in a Cyrillic word are read as Cyrillic.
_LOOKALIKES = str.maketrans("aceopxykmtbh", "асеорхукмтвн")
_MIXED = re.compile(r"[a-z]+")
# An abbreviation opens to a head noun only from 3 letters on: `мол` → молоко, but `с` would allow everything.
# Shorter printed words (`вл`, `пп`, `фт`) are register codes, candidates only when labels used them as head nouns.
_MIN_ABBREVIATION = 3
# Word ranks past this one share a feature; a word's own record weighs as much as this many feature draws.
_MAX_RANK = 4
_FEATURE_WEIGHT = 3.0
MAX_ALIAS_WORDS = 4
# Brand words split where registers glue words with `/` (`женский/peggy/ph362`), keeping `coca-cola`, `lay's`, `mr.ricco`.
_BRAND_WORD = re.compile(r"[a-zа-я0-9]+(?:[-'&.][a-zа-я0-9]+)*")
_QUOTES = "\"«'/(["


def fold_text(text: str) -> str:
    """Lower case, ё → е, Latin look-alike letters inside Cyrillic words made Cyrillic."""
    text = text.lower().replace("ё", "е")
    if re.search(r"[a-z]", text) and re.search(r"[а-я]", text):
        text = re.sub(r"\w+", _unmix, text)
    return text


def _unmix(match: re.Match) -> str:
    word = match.group(0)
    if re.search(r"[а-я]", word) and _MIXED.search(word):
        return word.translate(_LOOKALIKES)
    return word


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(fold_text(text))


def brand_key(text: str) -> str:
    """A brand or a printed span in one comparable form: Cyrillic, no spaces or punctuation (``Nescafe`` = ``НЕСКАФЕ``)."""
    folded = fold_text(text)
    if re.search(r"[a-z]", folded):
        folded = to_cyrillic(folded).lower()
    return re.sub(r"[^0-9а-я]", "", folded.replace("э", "е").replace("й", "и"))


def brand_words(text: str) -> list[str]:
    return _BRAND_WORD.findall(fold_text(text))


def brand_word_features(text: str) -> list[tuple[str, str]]:
    """Each brand word of ``text`` with its feature: script, dictionary reading, digits, quoted, rank."""
    folded = fold_text(text)
    found = []
    for rank, match in enumerate(_BRAND_WORD.finditer(folded)):
        word = match.group(0)
        latin = bool(re.search(r"[a-z]", word))
        reading = "u" if latin or not re.search(r"[а-я]", word) else dictionary_reading(word)
        quoted = match.start() > 0 and folded[match.start() - 1] in _QUOTES
        digits = "d" if re.search(r"\d", word) else ""
        found.append((word, f"{'L' if latin else 'C'}{reading}{digits}{'q' if quoted else ''}{min(rank, 3)}"))
    return found


def brand_word_flags(raw_name: str, brand: str | None) -> list[tuple[str, str, bool]]:
    """The item's brand words with their features, and whether each prints a word of the labelled brand
    (as it is, transliterated, or cut: `сочн` of Сочная)."""
    targets = [brand_key(word) for word in tokens(brand or "")]
    flagged = []
    for word, feature in brand_word_features(raw_name):
        key = brand_key(word)
        flagged.append((word, feature, bool(key) and any(key == t or (len(key) >= 3 and t.startswith(key)) for t in targets)))
    return flagged


def spans(words: Sequence[str], longest: int = MAX_ALIAS_WORDS) -> Iterable[tuple[int, int]]:
    for start in range(len(words)):
        for end in range(start + 1, min(len(words), start + longest) + 1):
            yield start, end


@dataclass(frozen=True)
class BrandMatch:
    brand: str
    alias: str
    hits: int  # training strings holding the alias whose label was this brand
    seen: int  # training strings holding the alias

    @property
    def evidence(self) -> float:
        """The share of training strings with this alias that were labelled with this brand, smoothed."""
        return (self.hits + 0.5) / (self.seen + 1.0)


@dataclass(frozen=True)
class Lexicon:
    head_nouns: tuple[str, ...] = ()  # sorted
    # candidate head noun → [times it was the label's head noun, times it was a candidate]
    head_prior: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # the same per feature (model/lexicon.py head_candidates: kind, rank, noun or not)
    feature_prior: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # printed word → head nouns it implied where the head noun was not printed
    implied_heads: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    category_counts: Mapping[str, int] = field(default_factory=dict)
    word_categories: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # the labels' head noun → category counts
    head_categories: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # brand_key of a printed span → [canonical brand, hits, seen]
    brands: Mapping[str, tuple[str, int, int]] = field(default_factory=dict)
    # printed brand word → [times it was part of the item's labelled brand, times printed]; the same per feature
    brand_word_prior: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    brand_feature_prior: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    # the head-noun ranker's weight per candidate feature (model/head_ranker.py, fitted by training/rankers.py)
    head_weights: Mapping[str, float] = field(default_factory=dict)
    # the brand ranker's weight per option feature (model/brand_ranker.py, fitted by training/brand_ranker.py)
    brand_weights: Mapping[str, float] = field(default_factory=dict)

    # ---------- products ----------
    def head_candidates(self, item: str) -> dict[str, str]:
        """Words the product may start with, each with its feature (how and where the string offers it):
        printed words, their nominatives, head nouns they abbreviate, head nouns they imply."""
        return {candidate: feature for candidate, (feature, _) in self.head_offers(item).items()}

    def head_offers(self, item: str) -> dict[str, tuple[str, str]]:
        """``head_candidates`` with the printed word that offers each candidate ("" for an implied noun)."""
        folded = fold_text(item)
        found: dict[str, tuple[str, str]] = {}

        def offer(candidate: str, kind: str, rank: int, noun: bool, word: str) -> None:
            found.setdefault(candidate, (f"{kind}{min(rank, _MAX_RANK)}{'n' if noun else ''}", word))

        words = [w for w in _CYRILLIC_WORD.findall(folded) if len(w) >= _MIN_ABBREVIATION or self._is_head_noun(w)]
        for rank, word in enumerate(words):
            noun = is_noun(word)
            offer(word, "w", rank, noun, word)
            offer(nominative_head(word).replace("ё", "е"), "f", rank, noun, word)
            if len(word) >= _MIN_ABBREVIATION:
                start = bisect.bisect_left(self.head_nouns, word)
                end = bisect.bisect_left(self.head_nouns, word + "\U0010ffff", start)
                for head in self.head_nouns[start:end]:
                    offer(head, "a", rank, False, word)
        for token in _TOKEN.findall(folded):
            for head in self.implied_heads.get(token, ()):
                offer(head, "i", 0, False, "")
        return found

    def _is_head_noun(self, word: str) -> bool:
        at = bisect.bisect_left(self.head_nouns, word)
        return at < len(self.head_nouns) and self.head_nouns[at] == word

    def head_log_prior(self, candidate: str, feature: str, leave_out: str | None = None) -> float:
        """log P(candidate is the head noun | it is offered so), smoothed: a word's own record where it has
        one, drawn towards its feature's record (a first printed noun usually is the head noun, a word
        opened from an abbreviation rarely). ``leave_out``: the head noun of a training item these counts
        include, whose own offer is taken out (training/rankers.py fits on the others)."""
        own = 0 if leave_out is None else 1
        own_chosen = int(leave_out == candidate)
        feature_chosen, feature_offered = self.feature_prior.get(feature, (own_chosen, own))
        expected = (feature_chosen - own_chosen + 0.5) / (feature_offered - own + 1.0)
        chosen, offered = self.head_prior.get(candidate, (own_chosen, own))
        return math.log((chosen - own_chosen + _FEATURE_WEIGHT * expected) / (offered - own + _FEATURE_WEIGHT))

    def head_seen(self, candidate: str, leave_out: str | None = None) -> int:
        """How many training strings offered ``candidate`` (less the left-out item's own offer)."""
        return self.head_prior.get(candidate, (0, 0))[1] - (leave_out is not None)

    # ---------- categories ----------
    def category_log_prior(self, item: str, head: str = "") -> dict[str, float]:
        """Naive Bayes over the item's words and the product's head noun (when the labels know it):
        log P(category | words, head), normalised; empty when nothing is known."""
        total = sum(self.category_counts.values())
        words = [w for w in set(tokens(item)) if len(w) >= 3 and w in self.word_categories]
        head_seen = self.head_categories.get(fold_text(head).strip(), {})
        if not total or not (words or head_seen):
            return {}
        evidence = [self.word_categories[word] for word in words] + ([head_seen] if head_seen else [])
        scores = {}
        for category, count in self.category_counts.items():
            prior = count / total
            score = math.log(prior)
            for seen in evidence:
                score += math.log((seen.get(category, 0) + 0.5 * prior) / (sum(seen.values()) + 0.5)) - math.log(prior)
            scores[category] = score
        return log_normalised(scores)

    # ---------- brands ----------
    def brand_in(self, item: str) -> BrandMatch | None:
        """The known brand alias printed in the item as whole words: the one of most words (`галина бланка`
        over `бланка`), then the best evidenced."""
        words = tokens(item)
        best: BrandMatch | None = None
        for start, end in spans(words):
            key = brand_key(" ".join(words[start:end]))
            entry = self.brands.get(key)
            if entry is None or len(key) < 2:
                continue
            match = BrandMatch(entry[0], " ".join(words[start:end]), entry[1], entry[2])
            if best is None or (end - start, match.evidence, len(match.alias)) > (len(best.alias.split()), best.evidence, len(best.alias)):
                best = match
        return best

    def brand_word_probabilities(self, item: str, leave_out: bool = False, brand: str | None = None) -> list[tuple[str, str, float]]:
        """Each brand word of the item, its feature, and P(it is part of the item's brand): its own record, smoothed
        towards its feature's (model/lexicon.py brand_word_features). ``leave_out``: the item is a training
        item labelled with ``brand``, whose own counts are taken out (model/brand_ranker.py fits on them)."""
        found = []
        for word, feature, in_brand in brand_word_flags(item, brand):
            own, own_in = (1, int(in_brand)) if leave_out else (0, 0)
            feature_in, feature_seen = self.brand_feature_prior.get(feature, (own_in, own))
            expected = (feature_in - own_in + 0.5) / (feature_seen - own + 1.0)
            part, printed = self.brand_word_prior.get(word, (own_in, own))
            found.append((word, feature, (part - own_in + _FEATURE_WEIGHT * expected) / (printed - own + _FEATURE_WEIGHT)))
        return found

    # ---------- file ----------
    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "head_nouns": list(self.head_nouns),
            "head_prior": {k: list(v) for k, v in sorted(self.head_prior.items())},
            "feature_prior": {k: list(v) for k, v in sorted(self.feature_prior.items())},
            "implied_heads": {k: list(v) for k, v in sorted(self.implied_heads.items())},
            "category_counts": dict(sorted(self.category_counts.items())),
            "word_categories": {k: dict(sorted(v.items())) for k, v in sorted(self.word_categories.items())},
            "head_categories": {k: dict(sorted(v.items())) for k, v in sorted(self.head_categories.items())},
            "brands": {k: list(v) for k, v in sorted(self.brands.items())},
            "brand_word_prior": {k: list(v) for k, v in sorted(self.brand_word_prior.items())},
            "brand_feature_prior": {k: list(v) for k, v in sorted(self.brand_feature_prior.items())},
            "head_weights": {k: round(v, 5) for k, v in sorted(self.head_weights.items())},
            "brand_weights": {k: round(v, 5) for k, v in sorted(self.brand_weights.items())},
        }

    def write(self, directory: Path) -> Path:
        path = directory / LEXICON_NAME
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, document: dict, where: str = "lexicon") -> Lexicon:
        if document.get("format") != FORMAT:
            raise ValueError(f"{where}: format {document.get('format')!r}, this code reads format {FORMAT}; rebuild the model")
        return cls(
            head_nouns=tuple(sorted(document["head_nouns"])),
            head_prior={k: (int(v[0]), int(v[1])) for k, v in document["head_prior"].items()},
            feature_prior={k: (int(v[0]), int(v[1])) for k, v in document["feature_prior"].items()},
            implied_heads={k: tuple(v) for k, v in document["implied_heads"].items()},
            category_counts=dict(document["category_counts"]),
            word_categories=document["word_categories"],
            head_categories=document["head_categories"],
            brands={k: (v[0], int(v[1]), int(v[2])) for k, v in document["brands"].items()},
            brand_word_prior={k: (int(v[0]), int(v[1])) for k, v in document["brand_word_prior"].items()},
            brand_feature_prior={k: (int(v[0]), int(v[1])) for k, v in document["brand_feature_prior"].items()},
            head_weights={k: float(v) for k, v in document["head_weights"].items()},
            brand_weights={k: float(v) for k, v in document["brand_weights"].items()},
        )


def read_lexicon(*directories: Path) -> Lexicon:
    """The first ``lexicon.json`` found; none: an empty lexicon (no priors, no brand aliases)."""
    for directory in directories:
        path = directory / LEXICON_NAME
        if path.exists():
            try:
                return Lexicon.from_json(json.loads(path.read_text(encoding="utf-8")), str(path))
            except (KeyError, TypeError, ValueError) as error:
                raise ValueError(f"{path}: not a readable lexicon ({error}); rebuild with python -m training.build_default_model") from error
    return Lexicon()
