"""The one typed settings object, read from ``ENRICHER_*`` environment variables.

Defaults are the local demo's; production values are documented in ``deploy/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENRICHER_", extra="forbid")

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

    # Batching: a take collects up to take_max_events receipts or waits at most max_wait_s;
    # its line items are then cut into model batches bounded by items and by padded tokens.
    take_max_events: int = Field(default=256, ge=1)
    max_wait_s: float = Field(default=0.5, gt=0)
    batch_max_items: int = Field(default=64, ge=1)
    batch_max_tokens: int = Field(default=8192, ge=64)
    model_timeout_s: float = Field(default=120.0, gt=0)

    # Answer cache: an in-process LRU, and a shared Redis store when a URL is given.
    cache_max_entries: int = Field(default=200_000, ge=1)
    redis_url: str | None = None
    cache_ttl_s: int = Field(default=30 * 24 * 3600, ge=60)

    # Model
    model_base_path: Path = REPO_ROOT / "models" / "default" / "base"
    model_adapter_path: Path | None = REPO_ROOT / "models" / "default" / "adapter"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    quantize_4bit: bool | None = None
    torch_threads: int = Field(default=0, ge=0, description="0 = torch default")

    # Faust keeps per-app state here (this service has no tables, but Faust creates the folder).
    state_dir: Path = REPO_ROOT / ".local" / "faust"

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _heartbeat_below_session(self) -> "Settings":
        if self.heartbeat_interval_s * 3 > self.session_timeout_s:
            raise ValueError("ENRICHER_HEARTBEAT_INTERVAL_S must be at most a third of ENRICHER_SESSION_TIMEOUT_S")
        return self

    def producer_config(self) -> dict[str, object]:
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": f"{self.group_id}-producer",
            # Dead letters of near-1 MB messages are larger than 1 MB (see app/topics.py).
            "message.max.bytes": 5 * 1024 * 1024,
        }

    def admin_config(self) -> dict[str, object]:
        return {"bootstrap.servers": self.bootstrap_servers}
