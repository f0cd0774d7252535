"""Build the dead-letter record for a message that cannot be processed."""

from __future__ import annotations

import base64
from datetime import datetime

from schemas.events import DeadLetter, ErrorInfo, SourcePosition

MAX_ERROR_MESSAGE_CHARS = 2000


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def dead_letter(
    *,
    kind: str,
    message: str,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int | None,
    key: bytes | None,
    value: bytes | None,
    failed_at: datetime,
) -> DeadLetter:
    return DeadLetter(
        error=ErrorInfo(kind=kind, message=message[:MAX_ERROR_MESSAGE_CHARS]),
        source=SourcePosition(topic=topic, partition=partition, offset=offset, timestamp_ms=timestamp_ms),
        original_key_b64=_b64(key),
        original_value_b64=_b64(value),
        failed_at=failed_at,
    )
