"""Check, before any work starts, that the broker accepts our credentials and certificate.

librdkafka and aiokafka both retry a refused login forever (an admin request only ends in a misleading
"Timed out" after 30 s), so a wrong password would look like a hang. One metadata request with the
Settings' own config turns a refusal into an error that says what to fix; an unreachable broker is
not a refusal and is left to the clients' own reconnects.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from app.settings import Settings

log = logging.getLogger(__name__)
# librdkafka's own log lines (connection failures, retries) go through logging instead of raw stderr.
_LIBRDKAFKA_LOG = logging.getLogger("librdkafka")

# Codes librdkafka reports when the broker rejects who we are; retrying with the same settings cannot help.
_DENIED = {KafkaError._AUTHENTICATION: "SASL authentication", KafkaError._SSL: "TLS handshake"}


class BrokerAccessDenied(RuntimeError):
    """The login or the TLS handshake failed: wrong credentials, certificate or CA (the message names what to check)."""


def check_broker_access(settings: Settings, timeout_s: float = 20.0) -> bool:
    """Raise BrokerAccessDenied on a refused login; return whether the broker answered within timeout_s."""
    errors: list[KafkaError] = []
    admin = AdminClient({**settings.admin_config(), "error_cb": errors.append, "logger": _LIBRDKAFKA_LOG})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            admin.list_topics(timeout=1.0)
            return True
        except KafkaException as error:
            errors.append(error.args[0])
        admin.poll(0.2)  # serves error_cb
        for error in errors:
            if error.code() in _DENIED:
                raise BrokerAccessDenied(_explain(settings, _DENIED[error.code()], error))
            # A refused client certificate arrives as a transport error carrying the TLS alert.
            if error.code() == KafkaError._TRANSPORT and "SSL routines" in error.str():
                raise BrokerAccessDenied(_explain(settings, "TLS handshake", error))
    log.warning(
        "broker_unreachable bootstrap=%s security_protocol=%s waited_s=%.0f last_error=%s",
        settings.bootstrap_servers,
        settings.security_protocol,
        timeout_s,
        errors[-1].name() if errors else "-",
    )
    return False


def _explain(settings: Settings, what: str, error: KafkaError) -> str:
    checks = []
    if settings.uses_sasl:
        checks.append(
            f"ENRICHER_SASL_USERNAME={settings.sasl_username}, the password in ENRICHER_SASL_PASSWORD_FILE="
            f"{settings.sasl_password_file} and ENRICHER_SASL_MECHANISM={settings.sasl_mechanism}"
        )
    if settings.uses_tls:
        checks.append(
            f"ENRICHER_SSL_CA_FILE={settings.ssl_ca_file or '(system trust store)'}, "
            f"ENRICHER_SSL_CERT_FILE={settings.ssl_cert_file or '-'}, ENRICHER_SSL_KEY_FILE={settings.ssl_key_file or '-'}"
        )
    # librdkafka's reason names the broker, the mechanism and the failed step, never the secret.
    return (
        f"the {what} with the broker at {settings.bootstrap_servers} failed "
        f"(ENRICHER_SECURITY_PROTOCOL={settings.security_protocol}): {error.str()}. Check {'; '.join(checks) or 'the listener'}"
    )
