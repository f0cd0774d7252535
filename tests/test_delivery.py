"""The delivery order (app/stages/delivery.py): takes overlap without breaking it, records keep it.

Plain asyncio. Takes: each stage of a fake take waits for a gate the test opens, and every stage logs
when it starts and ends, so the test can see what ran while the model was busy. Records: a scripted
producer stores what each round sends in order and fails the records the test names, so the order of
re-sends against later takes is checked exactly (tests/test_publisher.py does the same against the
real broker, which cannot time a record out on demand).
"""

from __future__ import annotations

import asyncio

import pytest

from app.stages.delivery import FailureKind, LineStopped, OutRecord, OverlappedTakes, ProducerRounds, RecordFailure

WAIT_S = 30  # generous: the machine is loaded; nothing here measures time


class GatedStages:
    """Stands in for the pipeline (not under test here): stages block until the test opens their gate."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.failing: set[str] = set()
        self.delivering: dict[int, asyncio.Future] = {}

    def gate(self, name: str) -> asyncio.Event:
        return self.gates.setdefault(name, asyncio.Event())

    def open(self, *names: str) -> None:
        for name in names:
            self.gate(name).set()

    async def _stage(self, name: str) -> None:
        self.log.append(f"{name}:start")
        await self.gate(name).wait()
        if name in self.failing:
            self.log.append(f"{name}:failed")
            raise RuntimeError(f"{name} failed")
        self.log.append(f"{name}:end")

    async def prepare(self, messages):
        await self._stage(f"prepare{messages[0]}")
        return messages[0]

    async def enrich(self, take):
        await self._stage(f"model{take}")
        return take

    def publish(self, take, outcome):
        self.log.append(f"handover{take}")  # what the real stage does before returning: records to the producer
        delivering = asyncio.ensure_future(self._delivered(take))
        self.delivering[take] = delivering
        return delivering

    async def _delivered(self, take):
        await self._stage(f"publish{take}")
        return take


class Recorder:
    def __init__(self) -> None:
        self.acked: list[int] = []
        self.failures: list[BaseException] = []

    async def on_done(self, token, result) -> None:
        assert token == result
        self.acked.append(token)

    async def on_failure(self, error: BaseException) -> None:
        self.failures.append(error)


async def _until(condition, what: str) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.001)

    try:
        await asyncio.wait_for(poll(), WAIT_S)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


def _run(scenario) -> None:
    asyncio.run(asyncio.wait_for(scenario, 4 * WAIT_S))


def _line() -> tuple[GatedStages, Recorder, OverlappedTakes]:
    stages, recorder = GatedStages(), Recorder()
    return stages, recorder, OverlappedTakes(stages, on_done=recorder.on_done, on_failure=recorder.on_failure)


def test_the_next_take_is_prepared_and_the_previous_one_published_while_the_model_runs():
    async def scenario() -> None:
        stages, recorder, takes = _line()
        stages.open("prepare1", "prepare2", "prepare3")
        await takes.submit([1], 1)
        await _until(lambda: "model1:start" in stages.log, "the model to start on take 1")
        # The model is busy with take 1; take 2 is prepared meanwhile, and submit waits for the model.
        second = asyncio.create_task(takes.submit([2], 2))
        await _until(lambda: "prepare2:end" in stages.log, "take 2 to be prepared")
        assert "model1:end" not in stages.log
        assert not second.done(), "submit must hold the loop while one take is already waiting for the model"
        stages.open("model1")
        await asyncio.wait_for(second, WAIT_S)
        # Take 1 is publishing and take 2 is in the model at the same time.
        await _until(lambda: {"publish1:start", "model2:start"} <= set(stages.log), "publish 1 and model 2")
        assert "publish1:end" not in stages.log and "model2:end" not in stages.log
        # Publishing take 1 does not wait for the model: take 3 is prepared too.
        third = asyncio.create_task(takes.submit([3], 3))
        await _until(lambda: "prepare3:end" in stages.log, "take 3 to be prepared")
        stages.open("publish1", "model2", "publish2", "model3", "publish3")
        await asyncio.wait_for(third, WAIT_S)
        # No fourth take ever arrives: the last takes are still acked.
        await asyncio.wait_for(takes.drain(), WAIT_S)
        assert recorder.acked == [1, 2, 3]
        assert recorder.failures == []

    _run(scenario())


def test_acks_follow_take_order_even_when_a_later_take_is_delivered_first():
    async def scenario() -> None:
        stages, recorder, takes = _line()
        stages.open("prepare1", "prepare2", "model1", "model2", "publish2")
        await takes.submit([1], 1)
        await takes.submit([2], 2)
        # Take 1's delivery is slow; take 2's records travel meanwhile, handed over after take 1's...
        await _until(lambda: "publish2:end" in stages.log, "take 2 to be delivered")
        assert stages.log.index("handover1") < stages.log.index("handover2")
        # ...but take 2 is not acked before take 1.
        await asyncio.sleep(0)
        assert recorder.acked == []
        stages.open("publish1")
        await asyncio.wait_for(takes.drain(), WAIT_S)
        assert recorder.acked == [1, 2]

    _run(scenario())


def test_the_model_runs_one_take_at_a_time_in_take_order():
    async def scenario() -> None:
        stages, recorder, takes = _line()
        stages.open(*(f"{stage}{n}" for stage in ("prepare", "publish") for n in (1, 2, 3)))
        await takes.submit([1], 1)
        second = asyncio.create_task(takes.submit([2], 2))
        await _until(lambda: "model1:start" in stages.log and "prepare2:end" in stages.log, "model 1 and prepare 2")
        stages.open("model2")  # take 2's model is free to finish at once, yet must not start before take 1's
        await asyncio.sleep(0)
        assert "model2:start" not in stages.log
        stages.open("model1")
        await asyncio.wait_for(second, WAIT_S)
        stages.open("model3")
        await takes.submit([3], 3)
        await asyncio.wait_for(takes.drain(), WAIT_S)
        model_starts = [entry for entry in stages.log if entry.startswith("model") and entry.endswith(":start")]
        assert model_starts == ["model1:start", "model2:start", "model3:start"]
        assert stages.log.index("model2:start") > stages.log.index("model1:end")
        assert recorder.acked == [1, 2, 3]

    _run(scenario())


def test_a_failed_take_stops_the_line_and_neither_it_nor_any_later_take_is_acked():
    async def scenario() -> None:
        stages, recorder, takes = _line()
        stages.failing.add("model2")
        stages.open("prepare1", "prepare2", "prepare3", "model1", "model3", "publish3")
        await takes.submit([1], 1)
        await takes.submit([2], 2)
        # Take 3 is prepared while take 2 is in the model; it must not reach the model after take 2 fails.
        third = asyncio.create_task(takes.submit([3], 3))
        await _until(lambda: "prepare3:end" in stages.log and "model2:start" in stages.log, "prepare 3 during model 2")
        stages.open("model2")
        with pytest.raises(LineStopped):
            await asyncio.wait_for(third, WAIT_S)
        stages.open("publish1")
        await asyncio.wait_for(takes.drain(), WAIT_S)
        assert recorder.acked == [1]  # the take before the failure is published and acked normally
        assert [str(error) for error in recorder.failures] == ["model2 failed"]
        assert "model3:start" not in stages.log and "publish2:start" not in stages.log
        with pytest.raises(LineStopped):
            await takes.submit([4], 4)
        assert "prepare4:start" not in stages.log

    _run(scenario())


def test_a_failure_while_publishing_leaves_that_take_and_later_published_ones_unacked():
    async def scenario() -> None:
        stages, recorder, takes = _line()
        stages.failing.add("publish1")
        stages.open("prepare1", "prepare2", "model1", "model2", "publish2")
        await takes.submit([1], 1)
        await takes.submit([2], 2)
        await _until(lambda: "publish2:end" in stages.log, "take 2 to be delivered while take 1 is not")
        stages.open("publish1")
        await asyncio.wait_for(takes.drain(), WAIT_S)
        # Take 2 was delivered, but it comes after the failure: replayed, not acked.
        assert recorder.acked == []
        assert len(recorder.failures) == 1

    _run(scenario())


def test_a_take_leaving_the_model_after_a_failure_hands_nothing_over():
    async def scenario() -> None:
        stages, recorder, takes = _line()
        stages.failing.add("publish1")
        stages.open("prepare1", "prepare2", "model1")
        await takes.submit([1], 1)
        await takes.submit([2], 2)
        await _until(lambda: "model2:start" in stages.log, "take 2 in the model")
        stages.open("publish1")  # take 1's delivery fails while take 2 is in the model
        await _until(lambda: recorder.failures, "the delivery failure")
        stages.open("model2", "publish2")
        await asyncio.wait_for(takes.drain(), WAIT_S)
        assert "model2:end" in stages.log and "handover2" not in stages.log
        assert recorder.acked == []

    _run(scenario())


def test_a_failure_while_preparing_is_reported_once_and_stops_the_loop():
    async def scenario() -> None:
        stages, recorder, takes = _line()
        stages.failing.add("prepare2")
        stages.open("prepare1", "model1")
        await takes.submit([1], 1)
        await takes.submit([2], 2)  # returns once take 1 left the model, before take 2 is prepared
        assert "prepare2:start" in stages.log and "prepare2:failed" not in stages.log
        stages.open("prepare2")
        await _until(lambda: recorder.failures, "the prepare failure to be reported")
        with pytest.raises(LineStopped, match="prepare2 failed"):
            await takes.submit([3], 3)
        stages.open("publish1")
        await asyncio.wait_for(takes.drain(), WAIT_S)
        # Take 1 was already publishing when take 2 failed: it is acked, take 2 never reaches the model.
        assert len(recorder.failures) == 1 and recorder.acked == [1]
        assert "model2:start" not in stages.log and "prepare3:start" not in stages.log

    _run(scenario())


def test_a_delivery_cancelled_under_a_take_is_a_failure_not_a_silent_stop():
    async def scenario() -> None:
        stages, recorder, takes = _line()
        stages.open("prepare1", "model1")
        await takes.submit([1], 1)
        await _until(lambda: "publish1:start" in stages.log, "take 1 delivering")
        # The publisher's round is cancelled (event-loop teardown), not the take: the take must report it.
        stages.delivering[1].cancel()
        await asyncio.wait_for(takes.drain(), WAIT_S)
        assert recorder.acked == [] and len(recorder.failures) == 1
        assert isinstance(recorder.failures[0], asyncio.CancelledError)
        with pytest.raises(LineStopped):
            await takes.submit([2], 2)

    _run(scenario())


def test_cancelling_abandons_takes_in_flight_without_acking_them():
    async def scenario() -> None:
        stages, recorder, takes = _line()
        stages.open("prepare1")
        await takes.submit([1], 1)
        await _until(lambda: "model1:start" in stages.log, "model 1")
        await asyncio.wait_for(takes.cancel(), WAIT_S)
        stages.open("model1", "publish1")
        await asyncio.sleep(0)
        assert recorder.acked == [] and recorder.failures == []
        assert "publish1:start" not in stages.log

    _run(scenario())


def test_a_slow_broker_holds_the_line_after_three_unacked_takes():
    async def scenario() -> None:
        stages, recorder, takes = _line()
        stages.open(*(f"{stage}{n}" for stage in ("prepare", "model") for n in (1, 2, 3, 4)))
        for n in (1, 2, 3):
            await takes.submit([n], n)  # the model is free at once; take 1's publish hangs
        fourth = asyncio.create_task(takes.submit([4], 4))
        await _until(lambda: "model4:end" in stages.log, "model 4")
        await asyncio.sleep(0)
        assert not fourth.done(), "a fourth unacked take must wait for the broker"
        stages.open("publish1")
        await asyncio.wait_for(fourth, WAIT_S)
        stages.open("publish2", "publish3", "publish4")
        await asyncio.wait_for(takes.drain(), WAIT_S)
        assert recorder.acked == [1, 2, 3, 4]

    _run(scenario())


# ---- records: rounds in hand-over order -------------------------------------------------------------

KEY = b"client-1"


class ScriptedProducer:
    """Stores records in produce order; ``fail_once`` values time out the first time they are sent.

    A round that holds a ``large`` record with others is refused as a whole (the broker refuses the
    producer batch); a large record alone is refused for good.
    """

    def __init__(self, *, fail_once: set[bytes] = frozenset(), large: set[bytes] = frozenset()) -> None:
        self.log: list[bytes] = []
        self.rounds: list[list[bytes]] = []
        self._fail_once = set(fail_once)
        self._large = set(large)
        self.closed = False

    async def send_round(self, records):
        await asyncio.sleep(0.01)  # the broker's round trip: later hand-overs arrive meanwhile
        self.rounds.append([record.value for record in records])
        refused = any(record.value in self._large for record in records)
        outcomes = []
        for record in records:
            if refused and (len(records) > 1 or record.value in self._large):
                outcomes.append(RecordFailure(FailureKind.TOO_LARGE, "MSG_SIZE_TOO_LARGE: Broker: Message size too large"))
            elif record.value in self._fail_once:
                self._fail_once.discard(record.value)
                outcomes.append(RecordFailure(FailureKind.TRANSIENT, "_MSG_TIMED_OUT: Local: Message timed out"))
            else:
                self.log.append(record.value)
                outcomes.append(None)
        return outcomes

    def close(self) -> None:
        self.closed = True


def _records(*values: str) -> list[OutRecord]:
    return [OutRecord("out", KEY, value.encode()) for value in values]


async def _second_take_while_the_first_is_in_flight(rounds: ProducerRounds, first, second):
    delivered_first = rounds.hand_over(first)
    await asyncio.sleep(0.005)  # round 1 is on its way: the second take comes after it
    delivered_second = rounds.hand_over(second)
    return await asyncio.gather(delivered_first, delivered_second)


def test_a_timed_out_record_is_resent_before_a_later_take():
    producer = ScriptedProducer(fail_once={b"a2"})
    rounds = ProducerRounds(producer, retry_pause_s=0.01)
    first, second = _records("a1", "a2", "a3"), _records("b1", "b2")
    refused = asyncio.run(_second_take_while_the_first_is_in_flight(rounds, first, second))
    assert refused == [[], []]
    assert sorted(producer.log) == sorted(r.value for r in first + second)
    # Every record of the first take is on the broker before any of the second: one key stays in order.
    assert max(producer.log.index(v) for v in (b"a1", b"a2", b"a3")) < min(producer.log.index(v) for v in (b"b1", b"b2"))


def test_records_refused_with_a_large_one_are_resent_alone_before_a_later_take():
    producer = ScriptedProducer(large={b"LARGE"})
    rounds = ProducerRounds(producer, retry_pause_s=0.01)
    first, second = _records("a1", "LARGE", "a2"), _records("b1")
    refused_first, refused_second = asyncio.run(_second_take_while_the_first_is_in_flight(rounds, first, second))
    assert [r.record.value for r in refused_first] == [b"LARGE"] and refused_second == []
    assert "MSG_SIZE_TOO_LARGE" in refused_first[0].reason
    assert producer.log == [b"a1", b"a2", b"b1"]
    # The refused batch-mates went one per round, in their order, and the large one was judged alone.
    assert [b"LARGE"] in producer.rounds and [b"a1"] in producer.rounds and [b"a2"] in producer.rounds


def test_takes_handed_over_together_share_one_round_in_handover_order():
    producer = ScriptedProducer()
    rounds = ProducerRounds(producer)

    async def together():
        return await asyncio.gather(*(rounds.hand_over(_records(f"{take}-1", f"{take}-2")) for take in "abc"))

    assert asyncio.run(together()) == [[], [], []]
    assert producer.rounds == [[b"a-1", b"a-2", b"b-1", b"b-2", b"c-1", b"c-2"]]


def test_an_empty_take_is_delivered_at_once_and_a_failing_round_fails_its_takes():
    class BrokenProducer(ScriptedProducer):
        async def send_round(self, records):
            raise RuntimeError("producer is gone")

    rounds = ProducerRounds(BrokenProducer())

    async def scenario():
        assert await rounds.deliver([]) == []
        with pytest.raises(RuntimeError, match="producer is gone"):
            await rounds.deliver(_records("a1"))

    asyncio.run(scenario())
    rounds.close()
