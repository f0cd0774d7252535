"""Decode and validate one raw ``receipts`` message into a ReceiptEvent, or say precisely why not."""

from __future__ import annotations

import pydantic

from schemas.events import ReceiptEvent

# Kafka's default message.max.bytes is ~1 MB; anything near it is not a receipt.
MAX_EVENT_BYTES = 512 * 1024


class InvalidEvent(ValueError):
    """A message that can never become a receipt; it belongs in the dead-letter topic."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


def describe_errors(error: pydantic.ValidationError) -> str:
    # Locations and error types only: the offending values may be personal data or huge.
    parts = []
    for detail in error.errors(include_url=False, include_input=False)[:5]:
        location = ".".join(str(p) for p in detail["loc"]) or "<event>"
        parts.append(f"{location}: {detail['msg']}")
    more = error.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def decode_event(value: bytes | None) -> ReceiptEvent:
    """Validate a message value against the ReceiptEvent contract.

    Raises InvalidEvent with kind ``empty``, ``too_large``, ``invalid_json`` or ``invalid_receipt``.
    """
    if not value:
        raise InvalidEvent("empty", "message has no value")
    if len(value) > MAX_EVENT_BYTES:
        raise InvalidEvent("too_large", f"message is {len(value)} bytes, the limit is {MAX_EVENT_BYTES}")
    try:
        return ReceiptEvent.model_validate_json(value)
    except pydantic.ValidationError as error:
        kinds = {detail["type"] for detail in error.errors(include_url=False, include_input=False)}
        kind = "invalid_json" if kinds & {"json_invalid", "json_type"} else "invalid_receipt"
        raise InvalidEvent(kind, describe_errors(error)) from None
