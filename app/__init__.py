"""The streaming service, grouped by role: ``stages/`` (the pure take pipeline and its delivery order),
``kafka/`` (Faust, confluent-kafka and Redis: the edges), ``ops/`` (metrics, probes, log redaction),
``backfill/`` (bounded replays), ``tools/`` (demo and operator tools); ``settings``, ``worker`` and ``cli``
on top."""
