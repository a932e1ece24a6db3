"""The ingest path and the event feed of the control plane.

    batch.py         a PublishRequest validated into plain values (field paths for rejections)
    tracks.py        what a batch says about each track
    recognition.py   faces → enrolled person / unknown cluster: one k-NN per model version per batch
    clusters.py      unknown faces into person_clusters (placeholder persons, Unknown-NNN labels)
    events.py        one event per (track, kind), re-described when a better face arrives
    pipeline.py      IngestPipeline.store(tx, requests) → a BatchOutcome each (group commit), with the on_events hooks
    feed.py          FeedItem (what the feed carries), record() into the outbox, Subscribe's filters
    relay.py         outbox → Redis stream, exactly once, while ingest never waits for Redis
    subscription.py  one Subscribe call: resume, filter, bounded buffer, keepalives
    messages.py      stored rows as API messages
    runtime.py       one pipeline and relay per ControlApp
"""
