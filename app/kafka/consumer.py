"""Faust's aiokafka consumer, committing what the agent acked before it gives a partition up.

On a rebalance, Faust's ``Consumer.on_partitions_revoked`` first forgets the acked but not yet committed
offsets of the revoked partitions, and only then waits for the takes in flight and commits. So the
partition's next owner redid up to a commit interval of receipts (faust-streaming issue #502;
tests/test_rebalance.py fails without this class). Kafka Streams and quix-streams commit a revoked partition's processed
offsets during the revocation; this consumer does the same, before Faust forgets them. The takes still
in flight then finish and are committed by Faust's own revocation step, so a graceful hand-over repeats
nothing. Everything else is Faust's aiokafka transport; app/kafka/agent.py installs it on the app.
"""

from __future__ import annotations

from faust.transport.drivers import aiokafka
from faust.types import TP


class Consumer(aiokafka.Consumer):
    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        # A commit already running may predate the latest acks: let it finish, then commit the rest.
        await self.maybe_wait_for_commit_to_finish()
        await self.force_commit(revoked)
        await super().on_partitions_revoked(revoked)


class Transport(aiokafka.Transport):
    Consumer = Consumer
