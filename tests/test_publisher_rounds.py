"""The publisher's rounds (app/kafka/publisher.py) with the broker replaced by a scripted one.

The real-broker tests (tests/test_publisher.py) cannot make the broker time a record out on
demand; here each round's records go to a fake ``_produce_and_flush`` that appends them to a log in
produce order and fails the ones the test names, so the order of re-sends against later takes is
checked exactly. The producer object is built but never connects: no Kafka here.
"""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import KafkaError

import app.kafka.publisher
from app.kafka.publisher import OutRecord, Publisher

KEY = b"client-1"


class ScriptedBroker:
    """Stores records in produce order; ``fail_once`` values time out the first time they are sent.

    A round that holds a ``large`` record with others is refused as a whole (the broker refuses the
    producer batch); a large record alone is refused for good.
    """

    def __init__(self, *, fail_once: set[bytes] = frozenset(), large: set[bytes] = frozenset()) -> None:
        self.log: list[bytes] = []
        self.rounds: list[list[bytes]] = []
        self._fail_once = set(fail_once)
        self._large = set(large)

    def produce_and_flush(self, batch) -> None:
        records = [record for part in batch for record in part.records]
        self.rounds.append([record.value for record in records])
        refused = any(record.value in self._large for record in records)
        for part in batch:
            for record in part.records:
                if refused and (len(records) > 1 or record.value in self._large):
                    part.failures.append((record, KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)))
                elif record.value in self._fail_once:
                    self._fail_once.discard(record.value)
                    part.failures.append((record, KafkaError(KafkaError._MSG_TIMED_OUT)))
                else:
                    self.log.append(record.value)


@pytest.fixture
def publisher(monkeypatch):
    monkeypatch.setattr(app.kafka.publisher, "_RETRY_PAUSE_S", 0.05)
    # Nothing listens on the discard port; log_level 0 keeps librdkafka's connection errors out of the output.
    publisher = Publisher({"bootstrap.servers": "127.0.0.1:9", "log_level": 0}, flush_timeout_s=5)
    yield publisher
    publisher.close()


def _records(*values: str) -> list[OutRecord]:
    return [OutRecord("out", KEY, value.encode()) for value in values]


async def _second_take_while_the_first_is_in_flight(publisher: Publisher, first, second):
    delivered_first = publisher.send(first)
    await asyncio.sleep(0.01)  # round 1 is running or done, its retry pending: the second take comes after
    delivered_second = publisher.send(second)
    return await asyncio.gather(delivered_first, delivered_second)


def test_a_timed_out_record_is_resent_before_a_later_take(publisher):
    broker = ScriptedBroker(fail_once={b"a2"})
    publisher._produce_and_flush = broker.produce_and_flush
    first, second = _records("a1", "a2", "a3"), _records("b1", "b2")
    refused = asyncio.run(_second_take_while_the_first_is_in_flight(publisher, first, second))
    assert refused == [[], []]
    assert sorted(broker.log) == sorted(r.value for r in first + second)
    # Every record of the first take is on the broker before any of the second: one key stays in order.
    assert max(broker.log.index(v) for v in (b"a1", b"a2", b"a3")) < min(broker.log.index(v) for v in (b"b1", b"b2"))


def test_records_refused_with_a_large_one_are_resent_alone_before_a_later_take(publisher):
    broker = ScriptedBroker(large={b"LARGE"})
    publisher._produce_and_flush = broker.produce_and_flush
    first, second = _records("a1", "LARGE", "a2"), _records("b1")
    refused_first, refused_second = asyncio.run(_second_take_while_the_first_is_in_flight(publisher, first, second))
    assert [r.record.value for r in refused_first] == [b"LARGE"] and refused_second == []
    assert broker.log == [b"a1", b"a2", b"b1"]
    # The refused batch-mates went one per round, in their order, and the large one was judged alone.
    assert [b"LARGE"] in broker.rounds and [b"a1"] in broker.rounds and [b"a2"] in broker.rounds


def test_takes_handed_over_together_share_one_round_in_handover_order(publisher):
    broker = ScriptedBroker()
    publisher._produce_and_flush = broker.produce_and_flush

    async def together():
        return await asyncio.gather(*(publisher.send(_records(f"{take}-1", f"{take}-2")) for take in "abc"))

    assert asyncio.run(together()) == [[], [], []]
    assert broker.rounds == [[b"a-1", b"a-2", b"b-1", b"b-2", b"c-1", b"c-2"]]


def test_an_empty_take_is_delivered_at_once_and_a_failing_round_fails_its_takes(publisher):
    def broken(batch) -> None:
        raise RuntimeError("producer is gone")

    publisher._produce_and_flush = broken

    async def scenario():
        assert await publisher.send([]) == []
        with pytest.raises(RuntimeError, match="producer is gone"):
            await publisher.send(_records("a1"))

    asyncio.run(scenario())
