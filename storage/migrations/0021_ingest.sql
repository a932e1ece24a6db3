-- 0021_ingest.sql
-- The ingest path (IngestService.Publish) and the event feed (EventService.Subscribe).
-- Not in the seeds; each table and change is explained in storage/SCHEMA.md ("Ingest and feed"):
--   * ingest_batches: the idempotency keys of stored track batches (kept >= 7 days).
--   * track_events: one event per (camera, track, detection kind), enforceable although
--     events is partitioned (its unique constraints must include "timestamp").
--   * feed_outbox: feed messages committed with their rows and not yet on the Redis stream.
--   * person_cluster_label_seq: numbers of the Unknown-NNN cluster labels.
--   * review_actions.reviewer_id becomes optional (service keys review without a user).
--   * fn_purge_ingest_state(): drops idempotency keys and track mappings past retention.

-- =============================================================================
-- TABLE: ingest_batches
-- One row per stored TrackBatch. A resent batch finds its key here and stores nothing.
-- =============================================================================

CREATE TABLE IF NOT EXISTS ingest_batches (
    idempotency_key VARCHAR(128) NOT NULL,
    node_id         UUID NOT NULL,              -- sending pipeline node
    camera_id       UUID NOT NULL,
    sequence        BIGINT NOT NULL,            -- node's batch sequence number (echoed in the ack)
    update_count    INTEGER NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    CONSTRAINT pk_ingest_batches PRIMARY KEY (idempotency_key),
    CONSTRAINT fk_ingest_batches_camera
        FOREIGN KEY (camera_id)
        REFERENCES cameras (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT chk_ingest_batches_sequence CHECK (sequence >= 1),
    CONSTRAINT chk_ingest_batches_update_count CHECK (update_count BETWEEN 1 AND 1000)
);

CREATE INDEX IF NOT EXISTS idx_ingest_batches_received_at ON ingest_batches (received_at);
CREATE INDEX IF NOT EXISTS idx_ingest_batches_camera_id ON ingest_batches (camera_id);

COMMENT ON TABLE ingest_batches IS
    'Idempotency keys of stored ingest batches; kept at least 7 days (fn_purge_ingest_state)';

-- =============================================================================
-- TABLE: track_events
-- The event each (camera, track, kind) produced: kind 'human' (a person track:
-- human_detected) or 'face' (a track with a face: face_detected or
-- person_recognized, updated in place when a better face arrives).
-- =============================================================================

CREATE TABLE IF NOT EXISTS track_events (
    camera_id       UUID NOT NULL,
    track_id        VARCHAR(64) NOT NULL,
    kind            VARCHAR(10) NOT NULL,
    event_id        UUID NOT NULL,
    event_timestamp TIMESTAMPTZ NOT NULL,       -- events.timestamp: with event_id, the event's key
    face_quality    DECIMAL(4,3),               -- quality of the face the event describes ('face' only)
    parent_track_id VARCHAR(64),                -- a face track's person (body) track, as the node associated them
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    CONSTRAINT pk_track_events PRIMARY KEY (camera_id, track_id, kind),
    CONSTRAINT fk_track_events_camera
        FOREIGN KEY (camera_id)
        REFERENCES cameras (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT chk_track_events_kind CHECK (kind IN ('human', 'face')),
    CONSTRAINT chk_track_events_face_quality CHECK (face_quality BETWEEN 0.0 AND 1.0)
);

CREATE INDEX IF NOT EXISTS idx_track_events_event ON track_events (event_id);
CREATE INDEX IF NOT EXISTS idx_track_events_updated_at ON track_events (updated_at);
CREATE INDEX IF NOT EXISTS idx_track_events_parent ON track_events (camera_id, parent_track_id)
    WHERE parent_track_id IS NOT NULL;

COMMENT ON TABLE track_events IS
    'One event per (camera, track, kind): the unique key events (partitioned by timestamp) cannot carry';

DROP TRIGGER IF EXISTS trg_track_events_updated_at ON track_events;
CREATE TRIGGER trg_track_events_updated_at
    BEFORE UPDATE ON track_events
    FOR EACH ROW
    EXECUTE FUNCTION fn_update_updated_at();

-- =============================================================================
-- TABLE: feed_outbox
-- Feed messages written in the transaction that recorded their rows; a relay in
-- the control plane appends them to the Redis stream in id order and deletes them.
-- =============================================================================

CREATE TABLE IF NOT EXISTS feed_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY,
    message_id      UUID NOT NULL DEFAULT gen_random_uuid(),  -- deduplicates a republish after a crash
    payload         JSONB NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    CONSTRAINT pk_feed_outbox PRIMARY KEY (id)
);

COMMENT ON TABLE feed_outbox IS
    'Event-feed messages committed but not yet appended to the Redis stream (drained by the control plane)';

-- =============================================================================
-- SEQUENCE: person_cluster_label_seq
-- Unknown-NNN labels, unique under concurrent ingest; starts after any label
-- of that form already present.
-- =============================================================================

CREATE SEQUENCE IF NOT EXISTS person_cluster_label_seq AS BIGINT MINVALUE 1;

DO $$
DECLARE
    v_highest BIGINT;
BEGIN
    SELECT max(substring(cluster_label FROM '^Unknown-(\d{1,18})$')::BIGINT) INTO v_highest
    FROM person_clusters;
    IF v_highest IS NOT NULL AND v_highest >= (SELECT last_value FROM person_cluster_label_seq) THEN
        PERFORM setval('person_cluster_label_seq', v_highest);
    END IF;
END $$;

GRANT USAGE ON SEQUENCE person_cluster_label_seq TO vigil_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ingest_batches, track_events, feed_outbox TO vigil_app;

-- =============================================================================
-- review_actions: a review by a service key has no user (as 0020 for creators);
-- audit_logs.details.api_key_id names the key.
-- =============================================================================

ALTER TABLE review_actions ALTER COLUMN reviewer_id DROP NOT NULL;

-- =============================================================================
-- FUNCTION: fn_purge_ingest_state
-- Deletes idempotency keys and track mappings older than the retention (default
-- 8 days: keys must be remembered at least 7). Run daily by the scheduler, next to
-- fn_maintain_partitions(). Returns one row per table.
-- =============================================================================

CREATE OR REPLACE FUNCTION fn_purge_ingest_state(p_retention INTERVAL DEFAULT INTERVAL '8 days')
RETURNS TABLE (table_name TEXT, deleted BIGINT)
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    IF p_retention IS NULL OR p_retention < INTERVAL '7 days' THEN
        RAISE EXCEPTION 'fn_purge_ingest_state: retention must be at least 7 days (idempotency keys are promised for 7)'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    DELETE FROM ingest_batches WHERE received_at < NOW() - p_retention;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    table_name := 'ingest_batches';
    RETURN NEXT;
    -- a track alive that long is a stuck tracker; its next face starts a new event
    DELETE FROM track_events WHERE updated_at < NOW() - p_retention;
    GET DIAGNOSTICS deleted = ROW_COUNT;
    table_name := 'track_events';
    RETURN NEXT;
END;
$$;

COMMENT ON FUNCTION fn_purge_ingest_state(INTERVAL) IS
    'Delete ingest idempotency keys and track-event mappings older than the retention (>= 7 days, default 8); run daily';
