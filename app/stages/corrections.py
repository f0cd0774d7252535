"""Corrections: whether one is usable, and how an item's corrections decide its override.

The state of one item (``ItemCorrections``) is the value of the corrections table that
app/kafka/corrections_agent.py keeps, keyed by the item's key digest. The rules, in one place:

1. an analyst's value for a field is active at once; a later analyst value for that field replaces it;
2. a customer's value for a field is active only once ``threshold`` distinct customers propose it (and no
   analyst decided the field); among several such values the one most customers propose wins, ties going
   to the value proposed first;
3. each customer has one vote per field: their latest correction of that field (a changed mind moves it).

Folding is replay-safe: Faust delivers at least once, and folding the same corrections again in the same
order leaves every vote, and so the override, as it was. Only ``count`` (corrections received for a
proposal) may count a replayed correction twice; nothing is decided on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import orjson
import pydantic

from app.stages.validation import describe_errors
from model.item_key import item_key
from schemas.events import AuthorKind, CorrectionEvent, Override
from schemas.taxonomy import Taxonomy, UnknownCategory

# A correction is a few hundred bytes; the bound keeps a hostile producer from filling the table.
MAX_CORRECTION_BYTES = 16 * 1024
ANALYST = "analyst"


class InvalidCorrection(ValueError):
    """A message that can never be a correction; it belongs in the dead-letter topic."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def decode_correction(value: bytes | None, taxonomy: Taxonomy) -> CorrectionEvent:
    """Validate a ``transactions.corrections`` message.

    Raises InvalidCorrection with kind ``empty``, ``too_large``, ``invalid_json``, ``invalid_correction``
    or ``unknown_category`` (a category id the taxonomy does not have).
    """
    if not value:
        raise InvalidCorrection("empty", "message has no value")
    if len(value) > MAX_CORRECTION_BYTES:
        raise InvalidCorrection("too_large", f"message is {len(value)} bytes, the limit is {MAX_CORRECTION_BYTES}")
    try:
        correction = CorrectionEvent.model_validate_json(value)
    except pydantic.ValidationError as error:
        kinds = {detail["type"] for detail in error.errors(include_url=False, include_input=False)}
        kind = "invalid_json" if kinds & {"json_invalid", "json_type"} else "invalid_correction"
        raise InvalidCorrection(kind, describe_errors(error)) from None
    category = correction.fields.get("category_id")
    if category is not None:
        try:
            taxonomy.by_id(category)
        except UnknownCategory:
            raise InvalidCorrection(
                "unknown_category", f"fields.category_id {category!r} is not in taxonomy {taxonomy.version}"
            ) from None
    return correction


@dataclass(slots=True)
class Proposal:
    """One value proposed by customers for one field of one item."""

    field: str
    value: str | None
    count: int = 0
    customers: list[str] = field(default_factory=list)  # pseudonyms, each at most once


@dataclass(slots=True)
class AnalystFix:
    value: str | None
    analyst: str
    at: datetime


@dataclass(slots=True)
class ItemCorrections:
    """What people said about one item: the customers' proposals and the analysts' fixes."""

    item_key: str
    raw_name: str
    last_corrected_at: datetime
    received: int = 0
    proposals: list[Proposal] = field(default_factory=list)  # in the order first proposed
    analyst: dict[str, AnalystFix] = field(default_factory=dict)

    def encode(self) -> bytes:
        return orjson.dumps(self)

    @classmethod
    def decode(cls, data: bytes) -> "ItemCorrections":
        record = orjson.loads(data)
        return cls(
            item_key=record["item_key"],
            raw_name=record["raw_name"],
            last_corrected_at=datetime.fromisoformat(record["last_corrected_at"]),
            received=record["received"],
            proposals=[Proposal(**p) for p in record["proposals"]],
            analyst={
                name: AnalystFix(fix["value"], fix["analyst"], datetime.fromisoformat(fix["at"]))
                for name, fix in record["analyst"].items()
            },
        )


def fold(state: ItemCorrections | None, correction: CorrectionEvent) -> ItemCorrections:
    """The item's state with one more correction (rules 1 and 3 of the module docstring)."""
    if state is None:
        state = ItemCorrections(item_key(correction.raw_name), correction.raw_name, correction.corrected_at)
    state.raw_name = correction.raw_name
    state.last_corrected_at = correction.corrected_at
    state.received += 1
    author = correction.author
    for name, value in correction.fields.items():
        if author.kind is AuthorKind.ANALYST:
            state.analyst[name] = AnalystFix(value, author.id, correction.corrected_at)
            continue
        chosen = None
        for proposal in state.proposals:
            if proposal.field != name:
                continue
            if proposal.value == value:
                chosen = proposal
            elif author.id in proposal.customers:
                proposal.customers.remove(author.id)  # rule 3: the customer's vote moves
        if chosen is None:
            chosen = Proposal(name, value)
            state.proposals.append(chosen)
        chosen.count += 1
        if author.id not in chosen.customers:
            chosen.customers.append(author.id)
    return state


def active_override(state: ItemCorrections, threshold: int) -> Override | None:
    """The override the item's corrections decide (rules 1 and 2), or None when none is active."""
    fields: dict[str, str | None] = {}
    basis: dict[str, str] = {}
    for name, fix in state.analyst.items():
        fields[name], basis[name] = fix.value, ANALYST
    best: dict[str, Proposal] = {}
    for proposal in state.proposals:
        agreed = len(proposal.customers)
        if proposal.field in fields or agreed < threshold:
            continue
        leader = best.get(proposal.field)
        if leader is None or agreed > len(leader.customers):  # strictly more: a tie stays with the first
            best[proposal.field] = proposal
    for name, proposal in best.items():
        fields[name], basis[name] = proposal.value, f"customers:{len(proposal.customers)}"
    if not fields:
        return None
    return Override(
        item_key=state.item_key,
        raw_name=state.raw_name,
        fields=fields,
        basis=basis,
        updated_at=state.last_corrected_at,
    )
