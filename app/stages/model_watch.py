"""How long the model thread has been in its current call, and when that means it is stuck.

Every generate call ends at its own deadline (ENRICHER_MODEL_TIMEOUT_S, checked between decoding
steps), so a call running several deadlines long is a forward pass that does not return: a wedged
kernel, a deadlock in a native library. Nothing inside the process can free that thread. The
liveness probe reports it (app/ops/health.py), so the orchestrator restarts the worker, and the take,
never acked, is replayed by the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

A = TypeVar("A")


class ModelWatch:
    """Times the model call in progress; written by the model thread, read by the event loop and the probe."""

    def __init__(self, stuck_after_s: float) -> None:
        self.stuck_after_s = stuck_after_s
        self._since: float | None = None  # one attribute, written whole: no lock needed to read it
        self._items = 0

    def watched(self, call: Callable[[Sequence[str]], A]) -> Callable[[Sequence[str]], A]:
        """``call`` (the model's enrich function), timed from start to return."""

        def timed(batch: Sequence[str]) -> A:
            self._items = len(batch)
            self._since = time.monotonic()
            try:
                return call(batch)
            finally:
                self._since = None

        return timed

    def busy_s(self, now: float | None = None) -> float:
        """How long the current call has run; 0 when the model thread is not in one."""
        since = self._since
        if since is None:
            return 0.0
        return max((time.monotonic() if now is None else now) - since, 0.0)

    def stuck(self, now: float | None = None) -> str | None:
        """Why the worker is not live, if the current call has outrun the bound; None otherwise."""
        busy = self.busy_s(now)
        if busy <= self.stuck_after_s:
            return None
        return f"model call on {self._items} items running for {busy:.0f} s (ENRICHER_MODEL_STUCK_S={self.stuck_after_s:g})"
