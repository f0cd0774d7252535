"""Faust's aiokafka consumer, made to give partitions up and take them on without repeating receipts.

Two of Faust's rebalance steps (faust-streaming 0.15) repeat receipts on a graceful hand-over; this class
changes both. Everything else is Faust's aiokafka transport; app/kafka/agent.py installs it on the app.

1. Giving partitions up: Faust's ``Consumer.on_partitions_revoked`` first forgets the acked but not yet
   committed offsets of the revoked partitions, and only then waits for the takes in flight and commits.
   So the partition's next owner redid up to a commit interval of receipts (faust-streaming issue #502).
   Kafka Streams and quix-streams commit a revoked partition's processed offsets during the revocation;
   ``on_partitions_revoked`` does the same, before Faust forgets them. The takes still in flight then
   finish and are committed by Faust's own revocation step.
2. Taking partitions on: after every rebalance Faust seeks the input partitions to their committed
   offsets. Without a table it seeks before it lets records flow. With one (the corrections table,
   app/kafka/corrections_agent.py) its recovery lets records flow to read the changelogs, then resumes the
   input partitions, and only then seeks them (``Recovery.on_recovery_completed``). A receipt fetched in
   those milliseconds reached the agent, the seek fetched it again into the same take, and the worker
   published it twice (tests/test_rebalance.py: 1-3 receipts in 3 of 5 runs). ``perform_seek`` holds the
   flow while it seeks, whichever of Faust's paths calls it.
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

    async def perform_seek(self) -> None:
        # As on a revocation, a stopped flow makes Faust drop what it fetched and has not handed over: the
        # input partitions read it again from the seek; a standby changelog partition may miss it until it
        # becomes active, when recovery replays its changelog from the start (the table's store is in memory).
        resume = self.flow_active
        self.stop_flow()
        try:
            await super().perform_seek()
        finally:
            if resume:
                self.resume_flow()


class Transport(aiokafka.Transport):
    Consumer = Consumer
