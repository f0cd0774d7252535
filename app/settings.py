"""The one typed settings object, read from ``ENRICHER_*`` environment variables.

Defaults are the local demo's; production values are documented in ``deploy/``.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, PrivateAttr, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.stages.confidence_gate import DEFAULT_THRESHOLDS, ConfidenceThresholds

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

REPO_ROOT = Path(__file__).resolve().parent.parent

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


def _readable_file(variable: str, path: Path) -> Path:
    """The path if it is a readable file; otherwise an error naming the variable and the path, never the content."""
    try:
        with path.open("rb"):
            pass
    except FileNotFoundError:
        raise ValueError(f"{variable}={path}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{variable}={path}: is a directory, not a file") from None
    except PermissionError:
        raise ValueError(f"{variable}={path}: not readable by this user (permission denied)") from None
    except OSError as error:
        raise ValueError(f"{variable}={path}: cannot be opened ({error.strerror})") from None
    return path


def _read_secret(variable: str, path: Path) -> SecretStr:
    """A secret from a file (Kubernetes secret volume, Vault agent); one trailing newline is not part of it."""
    raw = _readable_file(variable, path).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{variable}={path}: not UTF-8 text") from None
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise ValueError(f"{variable}={path}: the file is empty")
    return SecretStr(secret)


class Settings(BaseSettings):
    # hide_input_in_errors: a validation error must not echo what it was given (it may be a misplaced secret).
    model_config = SettingsConfigDict(env_prefix="ENRICHER_", extra="forbid", hide_input_in_errors=True)

    # Kafka
    bootstrap_servers: str = "127.0.0.1:9092"
    input_topic: str = "receipts"
    output_topic: str = "transactions.enriched"
    dlq_topic: str = "receipts.dlq"
    group_id: str = "receipt-enricher"
    topic_partitions: int = Field(default=6, ge=1, description="Partitions used when this tool creates topics")
    # Short session timeouts let a crashed worker's partitions move quickly; production raises them
    # above the longest model batch (see deploy/).
    session_timeout_s: float = Field(default=30.0, gt=0)
    heartbeat_interval_s: float = Field(default=3.0, gt=0)
    commit_interval_s: float = Field(default=1.0, gt=0)
    produce_timeout_s: float = Field(default=30.0, gt=0)

    # Kafka security, applied to every client (worker, backfill, tools) through the *_config methods below.
    # Secrets come only from files; the values live in private SecretStr attributes, never in repr or logs.
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password_file: Path | None = None
    ssl_ca_file: Path | None = Field(default=None, description="PEM CA bundle; unset = the system trust store")
    ssl_cert_file: Path | None = Field(default=None, description="PEM client certificate (mTLS)")
    ssl_key_file: Path | None = Field(default=None, description="PEM private key of the client certificate")
    ssl_key_password_file: Path | None = None
    ssl_verify_hostname: bool = True
    _sasl_password: SecretStr | None = PrivateAttr(default=None)
    _ssl_key_password: SecretStr | None = PrivateAttr(default=None)

    # Batching: a take collects up to take_max_events receipts or waits at most max_wait_s;
    # its line items are then cut into model batches bounded by items and by padded tokens.
    take_max_events: int = Field(default=256, ge=1)
    # Receipts fetched ahead of the agent. Faust stops fetching a partition when this buffer is 80%
    # full and, once every partition is stopped, sleeps a whole second before it looks again; at 40%
    # it resumes. So the 40% mark must hold over a second of the fastest stage (a warm-cache replay:
    # ~10k receipts/s in the bench), or the worker idles: 16384 lost a fifth of the zero-cost rate.
    stream_buffer_max_events: int = Field(default=65536, ge=1)
    max_wait_s: float = Field(default=0.5, gt=0)
    batch_max_items: int = Field(default=64, ge=1)
    batch_max_tokens: int = Field(default=8192, ge=64)
    model_timeout_s: float = Field(default=120.0, gt=0)
    # A model call still running this long is a forward pass that hangs (each call stops at model_timeout_s
    # between decoding steps, but a single step cannot be interrupted): /healthz fails and the orchestrator
    # restarts the worker. 0 = four model deadlines.
    model_stuck_s: float = Field(default=0.0, ge=0, description="A model call running this long = not live; 0 = 4 × model_timeout_s")

    # Answer cache: an in-process LRU, and a shared Redis store when a URL is given.
    cache_max_entries: int = Field(default=200_000, ge=1)
    redis_url: str | None = None
    cache_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)

    # Model
    model_base_path: Path = REPO_ROOT / "models" / "default" / "base"
    model_adapter_path: Path | None = REPO_ROOT / "models" / "default" / "adapter"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    quantize_4bit: bool | None = None
    # auto: bf16 on CUDA (fp16 on GPUs without bf16), float32 on CPU.
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # Fold the LoRA adapter into a bf16/fp32 base at load (no 4-bit then): the fast serving path on a GPU.
    merge_adapter: bool = False
    # Decode with transformers' continuous batching (model/continuous_generation.py): a row that ends makes room
    # for the next instead of padding until the batch's longest answer ends. Off by default: it relies on
    # transformers 5.23 internals for the repetition guard (docs/performance.md).
    continuous_batching: bool = False
    torch_threads: int = Field(default=0, ge=0, description="0 = torch default")

    # Withhold a field whose calibrated confidence is under its threshold (app/stages/confidence_gate.py):
    # null product or brand, category `other`, status low_confidence. Chosen from the precision/coverage
    # curves of the gold split (docs/model.md#confidence); 0 keeps every field.
    min_product_confidence: float = Field(default=DEFAULT_THRESHOLDS.product, ge=0, le=1)
    min_brand_confidence: float = Field(default=DEFAULT_THRESHOLDS.brand, ge=0, le=1)
    min_category_confidence: float = Field(default=DEFAULT_THRESHOLDS.category, ge=0, le=1)

    # Corrections (docs/corrections.md): customers' and analysts' fixes, folded per item into a Faust table;
    # the active overrides go to a compacted topic that every worker and backfill reads in full.
    corrections_topic: str = "transactions.corrections"
    overrides_topic: str = "transactions.overrides"
    # Distinct customers who must propose the same value for a field before it changes everyone's answer;
    # at least 2, so one customer can never relabel an item for everyone. An analyst's fix applies at once.
    corrections_customer_threshold: int = Field(default=3, ge=2)
    # The worker reads the whole overrides topic before its first take; a topic it cannot read this long fails the start.
    overrides_load_timeout_s: float = Field(default=120.0, gt=0)

    # Faust keeps per-app state here (the corrections table's local copy; the changelog topic is the truth).
    state_dir: Path = REPO_ROOT / ".local" / "faust"

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Operations: /metrics, /healthz, /readyz on one port (app/ops/health.py); consumer lag read from Kafka.
    # Several workers on one host need a port each: the worker refuses to start on a taken port.
    metrics_host: str = "0.0.0.0"
    metrics_port: int = Field(default=9108, ge=1, le=65535)
    lag_poll_interval_s: float = Field(default=15.0, gt=0, description="How often consumer lag is read from Kafka")
    health_stall_s: float = Field(default=60.0, gt=0, description="Event loop silent this long = not live")

    @property
    def confidence_thresholds(self) -> ConfidenceThresholds:
        return ConfidenceThresholds(self.min_product_confidence, self.min_brand_confidence, self.min_category_confidence)

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> "Settings":
        if self.heartbeat_interval_s * 3 > self.session_timeout_s:
            raise ValueError("ENRICHER_HEARTBEAT_INTERVAL_S must be at most a third of ENRICHER_SESSION_TIMEOUT_S")
        return self

    @model_validator(mode="after")
    def _security_consistent(self) -> "Settings":
        protocol = self.security_protocol
        if self.uses_sasl:
            if not self.sasl_username:
                raise ValueError(f"ENRICHER_SECURITY_PROTOCOL={protocol} needs ENRICHER_SASL_USERNAME")
            if self.sasl_password_file is None:
                raise ValueError(f"ENRICHER_SECURITY_PROTOCOL={protocol} needs ENRICHER_SASL_PASSWORD_FILE")
            self._sasl_password = _read_secret("ENRICHER_SASL_PASSWORD_FILE", self.sasl_password_file)
        elif self.sasl_username or self.sasl_password_file:
            raise ValueError(
                f"ENRICHER_SASL_USERNAME/ENRICHER_SASL_PASSWORD_FILE are set but ENRICHER_SECURITY_PROTOCOL={protocol}; "
                "use SASL_SSL (or SASL_PLAINTEXT) or unset them"
            )
        tls_files = {
            "ENRICHER_SSL_CA_FILE": self.ssl_ca_file,
            "ENRICHER_SSL_CERT_FILE": self.ssl_cert_file,
            "ENRICHER_SSL_KEY_FILE": self.ssl_key_file,
            "ENRICHER_SSL_KEY_PASSWORD_FILE": self.ssl_key_password_file,
        }
        given = [variable for variable, path in tls_files.items() if path is not None]
        if not self.uses_tls:
            if given:
                raise ValueError(
                    f"{', '.join(given)} set but ENRICHER_SECURITY_PROTOCOL={protocol} does not use TLS; use SSL or SASL_SSL"
                )
            return self
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ValueError("a client certificate needs both ENRICHER_SSL_CERT_FILE and ENRICHER_SSL_KEY_FILE")
        if self.ssl_key_password_file is not None and self.ssl_key_file is None:
            raise ValueError("ENRICHER_SSL_KEY_PASSWORD_FILE is set without ENRICHER_SSL_KEY_FILE")
        for variable in given:
            _readable_file(variable, tls_files[variable])
        if self.ssl_key_password_file is not None:
            self._ssl_key_password = _read_secret("ENRICHER_SSL_KEY_PASSWORD_FILE", self.ssl_key_password_file)
        return self

    @property
    def model_stuck_bound_s(self) -> float:
        return self.model_stuck_s or 4 * self.model_timeout_s

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def sasl_password(self) -> SecretStr | None:
        return self._sasl_password

    def _security_config(self) -> dict[str, object]:
        """librdkafka's security properties; every confluent-kafka client config includes them."""
        config: dict[str, object] = {"security.protocol": self.security_protocol}
        if self.uses_sasl:
            assert self._sasl_password is not None  # the validator read it
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self._sasl_password.get_secret_value()
        if self.uses_tls:
            config["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_verify_hostname else "none"
            if self.ssl_ca_file:
                config["ssl.ca.location"] = str(self.ssl_ca_file)
            if self.ssl_cert_file and self.ssl_key_file:
                config["ssl.certificate.location"] = str(self.ssl_cert_file)
                config["ssl.key.location"] = str(self.ssl_key_file)
            if self._ssl_key_password is not None:
                config["ssl.key.password"] = self._ssl_key_password.get_secret_value()
        return config

    def consumer_config(self, group_id: str) -> dict[str, object]:
        """A confluent-kafka consumer in ``group_id`` (tools, backfill, lag collection; the worker uses Faust)."""
        return {"bootstrap.servers": self.bootstrap_servers, "group.id": group_id, **self._security_config()}

    def ssl_context(self) -> ssl.SSLContext:
        """The TLS context for aiokafka (Faust): same CA, client certificate and hostname check as librdkafka's."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ssl_ca_file) if self.ssl_ca_file else None)
        context.check_hostname = self.ssl_verify_hostname
        if self.ssl_cert_file and self.ssl_key_file:
            password = self._ssl_key_password.get_secret_value() if self._ssl_key_password else None
            try:
                context.load_cert_chain(str(self.ssl_cert_file), str(self.ssl_key_file), password=password)
            except ssl.SSLError as error:
                # Python's message names neither file; never include the key or its password.
                raise ValueError(
                    f"ENRICHER_SSL_CERT_FILE={self.ssl_cert_file} / ENRICHER_SSL_KEY_FILE={self.ssl_key_file}: "
                    f"cannot load the client certificate ({error.reason or 'bad key, password or format'})"
                ) from None
        return context

    def faust_credentials(self) -> "CredentialsT | None":
        """``broker_credentials`` for the Faust app (aiokafka), equivalent to :meth:`_security_config`."""
        from faust.auth import SASLCredentials, SSLCredentials

        if self.uses_sasl:
            assert self._sasl_password is not None
            return SASLCredentials(
                username=self.sasl_username,
                password=self._sasl_password.get_secret_value(),
                ssl_context=self.ssl_context() if self.uses_tls else None,
                mechanism=self.sasl_mechanism,
            )
        if self.uses_tls:
            return SSLCredentials(self.ssl_context())
        return None

    def producer_config(self) -> dict[str, object]:
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": f"{self.group_id}-producer",
            # Dead letters of near-1 MB messages are larger than 1 MB (see app/kafka/topics.py).
            "message.max.bytes": 5 * 1024 * 1024,
            **self._security_config(),
        }

    def admin_config(self) -> dict[str, object]:
        return {"bootstrap.servers": self.bootstrap_servers, **self._security_config()}
