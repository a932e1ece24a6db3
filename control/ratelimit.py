"""Per-API-key rate limits shared by every control replica (Redis, fixed one-minute windows)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis.asyncio as aioredis

# INCR and EXPIRE in one step, so a crash between them cannot leave a counter without expiry.
_COUNT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
"""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: float


class RateLimiter:
    def __init__(self, client: aioredis.Redis, *, window_s: int = 60, prefix: str = "vigil:ratelimit"):
        self.client = client
        self.window_s = window_s
        self.prefix = prefix
        self._count = client.register_script(_COUNT)

    async def hit(self, subject: str, limit: int) -> RateDecision:
        """Count one request of `subject` against `limit` per window."""
        now = time.time()
        window = int(now // self.window_s)
        count = int(await self._count(keys=[f"{self.prefix}:{subject}:{window}"], args=[self.window_s * 2]))
        retry = (window + 1) * self.window_s - now
        return RateDecision(count <= limit, limit, max(0, limit - count), 0.0 if count <= limit else retry)
