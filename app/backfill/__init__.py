"""``receipt-enricher backfill``: ``plan`` decides the range and its resume (pure), ``run`` replays it."""
