"""The shared answer store on Redis: survives restarts, shared by every worker.

Redis is an optimisation, never a dependency of correctness: when it fails, lookups miss and
writes are skipped, each failure logged and counted, and the model answers instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import redis

log = logging.getLogger(__name__)


class RedisAnswerStore:
    def __init__(self, url: str, ttl_s: int) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self._ttl_s = ttl_s
        self.failures = 0

    def get_many(self, keys: list[str]) -> dict[str, bytes]:
        if not keys:
            return {}
        try:
            values = self._client.mget(keys)
        except redis.RedisError as error:
            self.failures += 1
            log.warning("shared_cache_unavailable op=get error=%s", type(error).__name__)
            return {}
        return {key: value for key, value in zip(keys, values) if value is not None}

    def put_many(self, items: Mapping[str, bytes]) -> None:
        if not items:
            return
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(key, value, ex=self._ttl_s)
                pipe.execute()
        except redis.RedisError as error:
            self.failures += 1
            log.warning("shared_cache_unavailable op=put error=%s", type(error).__name__)
