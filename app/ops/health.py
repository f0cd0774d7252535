"""Liveness, readiness and metrics over HTTP: ``/healthz``, ``/readyz``, ``/metrics`` on one port.

The server runs in its own threads and starts before the model loads, so a probe gets an answer
("not ready: model loading") from the first second, and a scrape never waits on the event loop.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from app.ops.metrics import Metrics

log = logging.getLogger(__name__)


class MetricsPortInUse(OSError):
    """Another process listens on the metrics port; each worker on one host needs its own."""


@dataclass
class Health:
    """What the probes report. Written by the worker's event loop, read by the HTTP threads
    (single attribute writes, so no lock is needed).

    Ready = the model is loaded and the consumer owns at least one input partition. Live = the
    event loop has beaten within ``stall_s`` (a blocked loop also stops heartbeats, fetches and
    commits), the model thread is not stuck in a call (app/stages/model_watch.py: a forward pass
    that hangs leaves the loop beating while nothing is consumed), and the worker has not failed.
    """

    metrics: Metrics | None = None
    stall_s: float = 60.0
    model_loaded: bool = False
    assigned: frozenset[int] = field(default_factory=frozenset)
    failure: str | None = None
    last_beat: float | None = None
    # The reason the model thread is stuck, or None (ModelWatch.stuck); set once the pipeline exists.
    model_stuck: Callable[[float | None], str | None] | None = None

    def model_ready(self, stuck: Callable[[float | None], str | None] | None = None) -> None:
        """The model is loaded; ``stuck`` says from now on whether its thread is stuck in a call."""
        self.model_loaded = True
        self.model_stuck = stuck
        self._publish()

    def partitions_assigned(self, partitions: frozenset[int]) -> None:
        self.assigned = partitions
        self._publish()

    def crashed(self, reason: str) -> None:
        self.failure = reason
        self._publish()

    def beat(self, now: float | None = None) -> None:
        self.last_beat = time.monotonic() if now is None else now

    @property
    def ready(self) -> bool:
        return not self.not_ready_reasons()

    def not_ready_reasons(self) -> list[str]:
        reasons = self.not_live_reasons()
        if not self.model_loaded:
            reasons.append("model loading")
        if not self.assigned:
            reasons.append("no input partitions assigned")
        return reasons

    def not_live_reasons(self, now: float | None = None) -> list[str]:
        reasons = []
        if self.failure:
            reasons.append(f"worker failed: {self.failure}")
        now = time.monotonic() if now is None else now
        # No beat yet means the loop has not started (the model is loading): that is not a stall.
        if self.last_beat is not None and now - self.last_beat > self.stall_s:
            reasons.append(f"event loop stalled for {now - self.last_beat:.0f} s")
        if self.model_stuck is not None and (stuck := self.model_stuck(now)) is not None:
            reasons.append(stuck)
        return reasons

    def _publish(self) -> None:
        if self.metrics is not None:
            self.metrics.ready.set(1 if self.ready else 0)
            self.metrics.assigned_partitions.set(len(self.assigned))


class HealthServer:
    """Serves ``registry`` and the two probes; a probe is 200 when its function returns no reasons."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        not_live: Callable[[], list[str]],
        not_ready: Callable[[], list[str]],
    ) -> None:
        handler = _handler(registry, not_live, not_ready)
        try:
            self._server = ThreadingHTTPServer((host, port), handler)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise MetricsPortInUse(
                    error.errno,
                    f"ENRICHER_METRICS_PORT={port} is already in use on {host}: another worker or exporter listens "
                    "there; give every worker on one host its own port",
                ) from None
            raise
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="health-http", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> "HealthServer":
        self._thread.start()
        log.info("health_server_started port=%d paths=/metrics,/healthz,/readyz", self.port)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _handler(
    registry: CollectorRegistry, not_live: Callable[[], list[str]], not_ready: Callable[[], list[str]]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                reasons = not_live()
                self._send(503 if reasons else 200, _body("ok", reasons))
            elif path == "/readyz":
                reasons = not_ready()
                self._send(503 if reasons else 200, _body("ready", reasons))
            else:
                self._send(404, b"not found: /metrics, /healthz, /readyz\n")

        def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            # Probes hit this every few seconds; access lines would drown the worker's own log.
            log.debug("health_request " + format, *args)

    return Handler


def _body(good: str, reasons: list[str]) -> bytes:
    return (("not " + good + ": " + "; ".join(reasons)) if reasons else good).encode() + b"\n"
