"""Keep secrets out of third-party DEBUG output; installed by the CLI's logging set-up, for every command."""

from __future__ import annotations

import logging

_REDACTED = "<sasl exchange redacted>"


class _RedactSaslExchange(logging.Filter):
    """aiokafka logs every request and response struct at DEBUG; a SASL PLAIN token is the password in clear."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(_is_sasl(arg) for arg in record.args):
            record.args = tuple(_REDACTED if _is_sasl(arg) else arg for arg in record.args)
        return True


def _is_sasl(value: object) -> bool:
    return type(value).__name__.startswith(("SaslAuthenticate", "SaslHandshake"))


_FILTER = _RedactSaslExchange()


def install_log_redaction() -> None:
    """Idempotent: the CLI may run more than once in one process (tests call ``main`` directly)."""
    logging.getLogger("aiokafka.conn").addFilter(_FILTER)
