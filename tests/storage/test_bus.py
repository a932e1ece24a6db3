"""The Redis Streams event bus against the embedded Valkey."""

import uuid

from vigil.storage.bus import EventBus


async def test_publish_read_and_resume(endpoints):
    bus = EventBus.from_url(endpoints.redis_url)
    stream = f"vigil:test:{uuid.uuid4().hex}"
    try:
        ids = [await bus.publish({"n": n, "kind": "human_detected"}, stream=stream) for n in range(5)]
        first_two = await bus.read({stream: "0"}, count=2)
        assert [m.payload["n"] for m in first_two] == [0, 1]
        # resuming after the last id seen gives exactly the rest, no gaps and no repeats
        rest = await bus.read({stream: first_two[-1].id}, count=100)
        assert [m.payload["n"] for m in rest] == [2, 3, 4]
        assert [m.id for m in first_two + rest] == ids
        assert await bus.read({stream: ids[-1]}, block_ms=50) == []
    finally:
        await bus.client.delete(stream)
        await bus.close()
