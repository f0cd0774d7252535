"""The worker's Faust transport (app/faust_transport.py): the hand-off keeps Faust's semantics without its tasks.

Plain asyncio and a real ``mode.Service`` (whose ``wait_first`` the hand-off falls back to); the
transport under a real broker runs in the end-to-end, rebalance and crash tests.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from importlib.metadata import version

import faust.transport.consumer
import pytest
from faust.transport import by_url
from mode import Service

from app.faust_transport import DERIVED_FROM, SCHEME, Consumer, Transport, hand_off


def _statements(source: str) -> list[str]:
    """The code lines of a method without comments, blank lines and its signature."""
    lines = [line.split("#", 1)[0].rstrip() for line in source.splitlines()[1:]]
    return [line for line in lines if line.strip()]


def test_the_copied_consumer_loop_matches_the_installed_faust():
    installed = inspect.getsource(faust.transport.consumer.Consumer._drain_messages)
    assert (version("faust-streaming"), hashlib.sha256(installed.encode()).hexdigest()[:16]) == DERIVED_FROM, (
        "faust-streaming's Consumer._drain_messages changed: copy it again into app/faust_transport.py, "
        "keep the hand_off line, and update DERIVED_FROM"
    )
    # The copy is Faust's loop with one statement replaced, nothing else edited.
    faust_loop = "\n".join(_statements(installed)).replace(
        "await self.wait_first(\n                                callback(message), self.suspend_flow.wait()\n                            )",
        "await hand_off(self, callback(message), self.suspend_flow)",
    )
    assert "hand_off" in faust_loop, "the wait_first statement was not found in Faust's loop"
    assert "\n".join(_statements(inspect.getsource(Consumer._drain_messages))) == faust_loop


def test_the_scheme_resolves_to_the_transport_through_the_entry_point():
    assert by_url(f"{SCHEME}://localhost:9092") is Transport


class NoFallback(Service):
    async def wait_first(self, *coros, timeout=None):
        raise AssertionError("a delivery that does not wait must not go through wait_first")


def test_a_delivery_that_does_not_wait_finishes_in_the_call_without_tasks():
    async def scenario() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        await hand_off(NoFallback(), queue.put(1), asyncio.Event())
        assert queue.get_nowait() == 1

    asyncio.run(scenario())


def _full_queue() -> asyncio.Queue[int]:
    queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
    queue.put_nowait(0)
    return queue


async def _blocked_hand_off(delivery, interrupt: asyncio.Event) -> asyncio.Task[None]:
    """Start the hand-off of a delivery that cannot finish yet; it must still be waiting a moment later."""
    handing = asyncio.create_task(hand_off(Service(), delivery, interrupt))
    await asyncio.sleep(0.01)
    assert not handing.done()
    return handing


def test_a_delivery_that_waits_is_finished_when_room_appears():
    async def scenario() -> None:
        queue = _full_queue()

        async def deliver() -> None:
            await asyncio.sleep(0)  # waits more than once before it is done
            await queue.put(1)

        handing = await _blocked_hand_off(deliver(), asyncio.Event())
        assert queue.get_nowait() == 0
        await asyncio.wait_for(handing, 5)
        assert queue.get_nowait() == 1

    asyncio.run(scenario())


def test_a_waiting_delivery_is_abandoned_when_the_flow_is_suspended():
    async def scenario() -> None:
        queue = _full_queue()
        suspend = asyncio.Event()
        cleaned_up = asyncio.Event()

        async def deliver() -> None:
            try:
                await queue.put(1)
            except asyncio.CancelledError:
                cleaned_up.set()  # cancelled by wait_first, not dropped and garbage-collected
                raise

        handing = await _blocked_hand_off(deliver(), suspend)
        suspend.set()  # what Faust's stop_flow does on a rebalance
        await asyncio.wait_for(handing, 5)
        await asyncio.wait_for(cleaned_up.wait(), 5)  # the delivery was cancelled, not left hanging
        assert queue.get_nowait() == 0 and queue.empty()

    asyncio.run(scenario())


@pytest.mark.parametrize("waits", [False, True])
def test_a_failing_delivery_raises_in_the_consumer_loop(waits):
    async def scenario() -> None:
        async def deliver() -> None:
            if waits:
                await asyncio.sleep(0.01)
            raise ValueError("cannot decode")

        with pytest.raises(ValueError, match="cannot decode"):
            await hand_off(Service(), deliver(), asyncio.Event())

    asyncio.run(scenario())
