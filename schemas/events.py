"""Event contracts: the input receipt, the enriched transaction, the dead letter, the correction and the override.

The published JSON Schema files in ``schemas/jsonschema/`` are generated from these models
(``python -m schemas.publish``) and a test keeps the two in agreement.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12 (requires-python is 3.11)

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, with_config

SCHEMA_VERSION = 1
# FNS allows 128 characters per item name; the margin tolerates odd registers, anything longer is refused.
MAX_ITEM_NAME_CHARS = 512
# Large hypermarket receipts reach a few hundred lines; a bound keeps one event from flooding a batch.
MAX_ITEMS_PER_RECEIPT = 1000
# 10^12 kopecks = 10 billion roubles: beyond any card purchase, below float precision trouble.
MAX_KOPECKS = 10**12
# The fiscal document number and fiscal sign are 4-byte unsigned fields in the FNS fiscal data format;
# without a bound a 400-digit number would pass through to consumers that read them as 64-bit integers.
MAX_UINT32 = 2**32 - 1
# nds, paymentType and productType are one-byte codes in the FNS fiscal data format.
ByteCode = Annotated[int, Field(ge=0, le=255)]

Kopecks = Annotated[int, Field(ge=0, le=MAX_KOPECKS, description="Amount in kopecks")]


# [^\W_] is exactly str.isalnum() per character (re's \w is isalnum() or "_"), searched in C: a
# generator over the characters was a third of the decode cost (bench/run.py, zero-cost worker profile).
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")


def _readable(name: str) -> str:
    # A name of only separators, '#' or control characters reaches the model as an empty prompt and comes
    # out with an empty normalized_name; no register prints such a line on purpose, so the receipt is refused.
    if _LETTER_OR_DIGIT.search(name) is None:
        raise ValueError("item name has no letter or digit")
    return name


ItemName = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ITEM_NAME_CHARS, description="Item name as printed; at least one letter or digit"),
    AfterValidator(_readable),
]


class _Input(BaseModel):
    # Unknown fields from FNS or upstream producers are kept, never rejected: the schema grows there.
    model_config = ConfigDict(extra="allow", strict=True, frozen=True)


class ReceiptItem(_Input):
    name: ItemName
    price: Kopecks
    quantity: float = Field(gt=0, le=1_000_000)
    sum: Kopecks
    nds: ByteCode | None = None
    paymentType: ByteCode | None = None
    productType: ByteCode | None = None


class Receipt(_Input):
    """A receipt as the FNS receipt check returns it (amounts in kopecks)."""

    dateTime: datetime
    totalSum: Kopecks
    user: str | None = Field(default=None, max_length=1024, description="Seller name")
    userInn: str = Field(min_length=1, max_length=16)
    kktRegId: str = Field(min_length=1, max_length=32)
    fiscalDriveNumber: str = Field(min_length=1, max_length=32)
    fiscalDocumentNumber: int = Field(ge=0, le=MAX_UINT32)
    fiscalSign: int = Field(ge=0, le=MAX_UINT32)
    operationType: int = Field(ge=1, le=4, description="1 sale, 2 sale return, 3 expense, 4 expense return")
    items: list[ReceiptItem] = Field(min_length=1, max_length=MAX_ITEMS_PER_RECEIPT)


class ReceiptEvent(_Input):
    """Envelope on topic ``receipts``; the Kafka key is the client id."""

    event_id: str = Field(min_length=1, max_length=128)
    client_id: str = Field(min_length=1, max_length=128)
    received_at: datetime
    receipt: Receipt


class ItemStatus(StrEnum):
    OK = "ok"
    UNKNOWN_CATEGORY = "unknown_category"
    MALFORMED_ANSWER = "malformed_answer"
    MODEL_ERROR = "model_error"
    # A field's confidence was under its threshold (ENRICHER_MIN_*_CONFIDENCE): that field is withheld.
    LOW_CONFIDENCE = "low_confidence"


class ItemSource(StrEnum):
    """Where an item's answer came from: an active override, the answer cache, or the model in this take."""

    OVERRIDE = "override"
    CACHE = "cache"
    MODEL = "model"


class _Output(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CategoryRef(_Output):
    id: str
    name: str


class ModelIdentity(_Output):
    base_model: str
    adapter: str | None
    version: str


Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class Confidence(_Output):
    """How likely each field is right, calibrated on held-out labelled items (docs/model.md#confidence)."""

    product: Probability
    brand: Probability
    category: Probability


class EnrichedItem(_Output):
    position: int = Field(ge=1, description="1-based position of the line in the receipt")
    raw_name: str
    price: int
    quantity: float
    sum: int
    normalized_name: str
    product: str | None
    brand: str | None
    category: CategoryRef
    status: ItemStatus
    # Additive: absent (null) when the model reports no probabilities (continuous batching, a cached answer
    # from before this field existed).
    confidence: Confidence | None = None
    # Optional only so records written before the field existed still read; every new record has it.
    source: ItemSource | None = Field(default=None, description="override, cache or model")


class ReceiptSummary(_Output):
    fiscal_drive_number: str
    fiscal_document_number: int
    fiscal_sign: int
    kkt_reg_id: str
    date_time: datetime
    total_sum: int
    seller: str | None
    seller_inn: str
    operation_type: int


class EnrichedTransaction(_Output):
    """Event on topic ``transactions.enriched``, keyed like the input event."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str
    client_id: str
    received_at: datetime
    enriched_at: datetime
    receipt: ReceiptSummary
    items: list[EnrichedItem]
    model: ModelIdentity


class ErrorInfo(_Output):
    kind: str = Field(description="Stable machine-readable error kind, e.g. invalid_json, invalid_receipt")
    message: str


class SourcePosition(_Output):
    topic: str
    partition: int
    offset: int
    timestamp_ms: int | None


class DeadLetter(_Output):
    """Event on topic ``receipts.dlq``: the original bytes, base64-encoded so they travel untouched."""

    schema_version: Literal[1] = SCHEMA_VERSION
    error: ErrorInfo
    source: SourcePosition
    original_key_b64: str | None
    original_value_b64: str | None
    failed_at: datetime


# ---- corrections (docs/corrections.md) ----------------------------------------------------------

# Mirrors model/parser.py's limits (schemas must not import the model package).
MAX_NORMALIZED_NAME_CHARS = 256
MAX_FIELD_CHARS = 80
# "##" separates the model's answer fields; tabs and line breaks would break the training TSV.
_FORBIDDEN_IN_FIELDS = re.compile(r"##|[\x00-\x1f\x7f\u2028\u2029]")


def _plain_text(value: str) -> str:
    if _FORBIDDEN_IN_FIELDS.search(value):
        raise ValueError("a corrected field may not contain '##', tabs, line breaks or other control characters")
    if value != value.strip():
        raise ValueError("a corrected field may not start or end with spaces")
    if _LETTER_OR_DIGIT.search(value) is None:
        raise ValueError("a corrected field needs a letter or digit")
    return value


NormalizedNameText = Annotated[str, Field(min_length=1, max_length=MAX_NORMALIZED_NAME_CHARS), AfterValidator(_plain_text)]
FieldText = Annotated[str, Field(min_length=1, max_length=MAX_FIELD_CHARS), AfterValidator(_plain_text)]
CORRECTABLE_FIELDS = ("normalized_name", "product", "brand", "category_id")


@with_config(ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1}))
class CorrectedFields(TypedDict, total=False):
    """The fields a person set. A field left out is not corrected; ``brand: null`` means "no brand"."""

    normalized_name: NormalizedNameText
    product: FieldText
    brand: FieldText | None
    category_id: Annotated[str, Field(min_length=1, max_length=64, description="A category id of schemas/taxonomy.json")]


class AuthorKind(StrEnum):
    CUSTOMER = "customer"
    ANALYST = "analyst"


class _Correction(BaseModel):
    # Strict and closed: a correction changes answers for others, so nothing unexpected is accepted.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CorrectionAuthor(_Correction):
    kind: AuthorKind
    id: str = Field(
        min_length=1, max_length=128, description="A customer's pseudonym (never the client id) or an analyst's staff id"
    )


def _something_corrected(fields: CorrectedFields) -> CorrectedFields:
    if not fields:
        raise ValueError("no field is corrected: give at least one of " + ", ".join(CORRECTABLE_FIELDS))
    return fields


class CorrectionEvent(_Correction):
    """Event on topic ``transactions.corrections``: a person's fix of one line item of an enriched receipt."""

    schema_version: Literal[1] = SCHEMA_VERSION
    correction_id: str = Field(min_length=1, max_length=128)
    event_id: str = Field(min_length=1, max_length=128, description="The receipt's event id")
    position: int = Field(ge=1, le=MAX_ITEMS_PER_RECEIPT, description="1-based position of the line in the receipt")
    raw_name: ItemName
    fields: Annotated[CorrectedFields, AfterValidator(_something_corrected)]
    author: CorrectionAuthor
    corrected_at: datetime


@with_config(ConfigDict(extra="forbid"))
class OverrideBasis(TypedDict, total=False):
    """Per overridden field, who decided it: ``analyst`` or ``customers:N`` (N distinct customers agreed)."""

    normalized_name: str
    product: str
    brand: str
    category_id: str


class Override(_Output):
    """Value on the compacted topic ``transactions.overrides``, keyed by the item's key digest; a tombstone
    (null value) means the item has no override any more."""

    schema_version: Literal[1] = SCHEMA_VERSION
    item_key: str = Field(description="model/item_key.py's key of the item")
    raw_name: str = Field(description="The raw name of the item's latest correction")
    fields: CorrectedFields
    basis: OverrideBasis
    updated_at: datetime = Field(description="When the item's latest correction was made")
