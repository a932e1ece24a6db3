"""The event bus on Redis Streams.

Every control replica appends events to one stream and any replica can serve any subscriber:
a subscriber's position is the stream entry id, which doubles as its resume token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

EVENTS_STREAM = "vigil:events"


@dataclass(frozen=True)
class BusMessage:
    stream: str
    id: str  # "<ms>-<seq>": ordered, usable as a resume token
    payload: dict[str, Any]


class EventBus:
    def __init__(self, client: aioredis.Redis, *, max_len: int = 1_000_000):
        self.client = client
        self.max_len = max_len  # approximate trimming keeps memory bounded

    @classmethod
    def from_url(cls, url: str, **kwargs) -> EventBus:
        return cls(aioredis.Redis.from_url(url, decode_responses=True), **kwargs)

    async def publish(self, payload: dict[str, Any], stream: str = EVENTS_STREAM) -> str:
        return await self.client.xadd(stream, {"data": json.dumps(payload, default=str)},
                                      maxlen=self.max_len, approximate=True)

    async def read(self, after: dict[str, str], *, count: int = 100, block_ms: int | None = None
                   ) -> list[BusMessage]:
        """Entries strictly after each stream's id ("0" = from the start, "$" = only new ones)."""
        response = await self.client.xread(after, count=count, block=block_ms)
        return [
            BusMessage(stream, entry_id, json.loads(fields["data"]))
            for stream, entries in response or []
            for entry_id, fields in entries
        ]

    async def range(self, stream: str = EVENTS_STREAM, start: str = "-", end: str = "+",
                    count: int | None = None) -> list[BusMessage]:
        entries = await self.client.xrange(stream, start, end, count=count)
        return [BusMessage(stream, entry_id, json.loads(fields["data"])) for entry_id, fields in entries]

    async def trim_before(self, min_id: str, stream: str = EVENTS_STREAM) -> int:
        return await self.client.xtrim(stream, minid=min_id, approximate=False)

    async def close(self) -> None:
        await self.client.aclose()

