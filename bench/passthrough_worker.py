"""The agent with no work in its stages: each receipt's bytes are copied to the output topic.

Used by bench/run.py to measure what Faust itself allows: the same agent, take loop, overlap, acks,
producer rounds and publisher as the real worker (app/kafka/agent.py, app/stages/delivery.py,
app/kafka/publisher.py), with no decoding, no cache and no model. ``python -m bench.passthrough_worker``
with the usual ENRICHER_* settings.
The zero-cost worker's rate divided by this one is the share of Faust's ceiling the pipeline reaches.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Sequence

from app.kafka.agent import create_app, run_app
from app.kafka.publisher import Publisher
from app.settings import Settings
from app.stages.delivery import OutRecord, ProducerRounds
from app.stages.enrichment import EnrichmentOutcome
from app.stages.pipeline import InMessage, TakeResult
from app.worker import freeze_loaded_heap
from bench.zero_cost_worker import parse_bench_args


class CopyStages:
    """The pipeline's three stages with nothing in them but the publish."""

    def __init__(self, rounds: ProducerRounds, output_topic: str) -> None:
        self._rounds = rounds
        self._output_topic = output_topic

    async def prepare(self, messages: Sequence[InMessage]) -> Sequence[InMessage]:
        return messages

    async def enrich(self, messages: Sequence[InMessage]) -> EnrichmentOutcome:
        return EnrichmentOutcome()

    def publish(self, messages: Sequence[InMessage], outcome: EnrichmentOutcome) -> Awaitable[TakeResult]:
        records = [OutRecord(self._output_topic, m.key, m.value or b"") for m in messages]
        return self._delivered(len(messages), outcome, self._rounds.hand_over(records))

    async def _delivered(self, receipts: int, outcome: EnrichmentOutcome, delivery: Awaitable[list]) -> TakeResult:
        rejected = await delivery
        if rejected:
            raise rejected[0]
        return TakeResult(receipts=receipts, items=0, dead_letters=0, outcome=outcome)


def main(argv: list[str] | None = None) -> None:
    # Takes --stats like every bench worker, so bench/run.py starts them all alike; there is no enricher
    # here, so nothing is written there (the bench reads a missing file as no batches).
    parse_bench_args(argv, __doc__)
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="ts=%(asctime)s level=%(levelname)s logger=%(name)s event=%(message)s")
    rounds = ProducerRounds(Publisher(settings.producer_config(), settings.produce_timeout_s))
    app = create_app(settings, CopyStages(rounds, settings.output_topic))
    freeze_loaded_heap()
    try:
        run_app(app, settings.log_level)
    finally:
        rounds.close()


if __name__ == "__main__":
    main()
