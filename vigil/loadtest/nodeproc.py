"""The pipeline node of `vigil loadtest pipeline`, as a child process: the real node pieces
(build_node: registration, Publisher with its spool, PortableBackend on the embedded Triton),
with the cameras added to the backend directly instead of through WatchAssignments, so a load
test runs exactly its N streams whatever else the control plane would assign. It prints one JSON
line per second on stdout: the counters of each stream and of the publisher.

    python -m vigil.loadtest.nodeproc '{"key": ..., "name": ..., "streams": [[camera_id, url], ...]}'
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from dataclasses import asdict

from vigil.logs import configure_logging
from vigil.pipeline.node import build_node
from vigil.pipeline.streams import StreamSpec
from vigil.settings import load_settings


def emit(**message) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main(config: dict) -> None:
    settings = load_settings()
    configure_logging("warning", "json")
    settings.node.capacity_streams = max(1, len(config["streams"]))
    settings.node.backend = "portable"
    node = build_node(settings, api_key=config["key"], name=config["name"])
    agent, backend, publisher = node.agent, node.agent.backend, node.agent.publisher
    await asyncio.to_thread(node.analyzer.wait_until_ready, 120.0)
    await agent.register()
    emit(type="registered", node_id=str(agent.identity.id))
    await publisher.start()
    await backend.start()
    for camera_id, url in config["streams"]:
        await backend.add_stream(StreamSpec(uuid.UUID(camera_id), None, url, int(config.get("fps", 15))))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        while not stop.is_set():
            streams = {str(cid): {"decoded": s.counters.decoded, "processed": s.counters.processed,
                                  "dropped": s.counters.dropped, "reconnects": s.counters.reconnects,
                                  "state": s.counters.state, "error": s.counters.last_error}
                       for cid, s in backend._streams.items()}
            emit(type="stats", streams=streams, publisher=asdict(publisher.stats()))
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
    finally:
        await backend.stop()
        await publisher.close()
        await node.channel.close()
        node.analyzer.close()
        emit(type="stopped", publisher=asdict(publisher.stats()))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
