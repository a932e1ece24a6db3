-- 0007_events.sql
-- Seed section 6: events and suspicious_activity_events, monthly RANGE partitions
-- on "timestamp" (setup order step 8).
--
-- Deviations (storage/SCHEMA.md):
--   * PRIMARY KEY (id, timestamp): a partitioned table's unique constraints must
--     include the partition key, so id alone is not globally unique-enforced and no
--     FK can reference events(id) / suspicious_activity_events(id).
--   * id gets DEFAULT gen_random_uuid() (seed: no default).
--   * No hard-coded 2024 partitions; a DEFAULT partition <table>_default plus the
--     current and next month (UTC) are created here, later months by
--     fn_maintain_partitions(). Partition names follow <table>_yYYYYmMM (the seed used
--     suspicious_activity_y..., suspicious_activity_default).

-- =============================================================================
-- TABLE: events (MONTHLY PARTITIONED BY timestamp)
-- =============================================================================

CREATE TABLE IF NOT EXISTS events (
    id              UUID NOT NULL DEFAULT gen_random_uuid(),
    camera_id       UUID NOT NULL,
    event_type      event_type_enum NOT NULL,
    person_id       UUID,                       -- NULL if unknown person
    cluster_id      UUID,                       -- Reference to person_clusters for unknowns
    confidence      DECIMAL(4,3) NOT NULL,
    bounding_box    JSONB NOT NULL,
    -- Format: {"x": 120, "y": 80, "width": 200, "height": 250, "frame_width": 1920, "frame_height": 1080}
    image_path      TEXT,                       -- Path to detection snapshot
    video_clip_path TEXT,                       -- Path to associated clip (if generated)
    timestamp       TIMESTAMPTZ NOT NULL,
    frame_number    BIGINT,                     -- Frame number in source video
    metadata        JSONB NOT NULL DEFAULT '{}',
    -- Format: {"pose": "frontal", "attributes": {"glasses": true, "mask": false},
    --          "track_id": "uuid", "processing_time_ms": 45}
    reviewed        BOOLEAN NOT NULL DEFAULT FALSE,
    review_action   review_action_enum,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Partition key must be part of the primary key
    PRIMARY KEY (id, timestamp),

    -- Constraints
    CONSTRAINT fk_events_camera
        FOREIGN KEY (camera_id)
        REFERENCES cameras (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT fk_events_person
        FOREIGN KEY (person_id)
        REFERENCES persons (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT fk_events_cluster
        FOREIGN KEY (cluster_id)
        REFERENCES person_clusters (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT chk_events_confidence CHECK (confidence BETWEEN 0.0 AND 1.0)
) PARTITION BY RANGE (timestamp);

-- Default partition catches rows outside every monthly partition
CREATE TABLE IF NOT EXISTS events_default PARTITION OF events DEFAULT;

-- Indexes (created on every partition automatically)
CREATE INDEX IF NOT EXISTS idx_events_camera_id ON events (camera_id);
CREATE INDEX IF NOT EXISTS idx_events_timestamp ON events (timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_events_event_type ON events (event_type);
CREATE INDEX IF NOT EXISTS idx_events_person_id ON events (person_id) WHERE person_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_events_cluster_id ON events (cluster_id) WHERE cluster_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_events_reviewed ON events (reviewed) WHERE reviewed = FALSE;
CREATE INDEX IF NOT EXISTS idx_events_metadata ON events USING GIN (metadata);

-- Comments
COMMENT ON TABLE events IS 'All AI detection events - partitioned monthly for performance and retention';
COMMENT ON COLUMN events.metadata IS 'Detection-specific data: pose, attributes, track_id, processing metrics';
COMMENT ON COLUMN events.id IS 'Event id; unique together with timestamp (partition key). References to an event (alerts.event_id, media_files.event_id, ...) are not FK-enforced.';

-- =============================================================================
-- TABLE: suspicious_activity_events (MONTHLY PARTITIONED BY timestamp)
-- =============================================================================

CREATE TABLE IF NOT EXISTS suspicious_activity_events (
    id              UUID NOT NULL DEFAULT gen_random_uuid(),
    camera_id       UUID NOT NULL,
    event_id        UUID,                       -- Link to base events table (if derived)
    activity_type   activity_type_enum NOT NULL,
    zone_id         UUID,                       -- Associated camera zone (if applicable)
    confidence      DECIMAL(4,3) NOT NULL,
    severity        severity_enum NOT NULL,
    details         JSONB NOT NULL DEFAULT '{}',
    -- Format varies by activity_type:
    -- intrusion: {"zone_name": "Loading Dock", "entry_point": {"x": 0.3, "y": 0.5}}
    -- loitering: {"duration_seconds": 320, "location": {"x": 0.4, "y": 0.6}}
    -- crowding:  {"person_count": 12, "cluster_center": {"x": 0.5, "y": 0.5}}
    -- fall:      {"floor_location": {"x": 0.6, "y": 0.8}, "impact_severity": 0.7}
    image_path      TEXT,
    video_clip_path TEXT,
    timestamp       TIMESTAMPTZ NOT NULL,
    alert_sent      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Partition key must be part of the primary key
    PRIMARY KEY (id, timestamp),

    -- Constraints
    CONSTRAINT fk_suspicious_camera
        FOREIGN KEY (camera_id)
        REFERENCES cameras (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT fk_suspicious_zone
        FOREIGN KEY (zone_id)
        REFERENCES camera_zones (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT chk_suspicious_confidence CHECK (confidence BETWEEN 0.0 AND 1.0)
) PARTITION BY RANGE (timestamp);

CREATE TABLE IF NOT EXISTS suspicious_activity_events_default PARTITION OF suspicious_activity_events DEFAULT;

-- Indexes
CREATE INDEX IF NOT EXISTS idx_suspicious_camera_id ON suspicious_activity_events (camera_id);
CREATE INDEX IF NOT EXISTS idx_suspicious_timestamp ON suspicious_activity_events (timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_suspicious_activity_type ON suspicious_activity_events (activity_type);
CREATE INDEX IF NOT EXISTS idx_suspicious_severity ON suspicious_activity_events (severity);
CREATE INDEX IF NOT EXISTS idx_suspicious_alert_sent ON suspicious_activity_events (alert_sent) WHERE alert_sent = FALSE;
CREATE INDEX IF NOT EXISTS idx_suspicious_zone_id ON suspicious_activity_events (zone_id) WHERE zone_id IS NOT NULL;

-- Comments
COMMENT ON TABLE suspicious_activity_events IS 'Anomaly and suspicious behavior events - partitioned monthly';
COMMENT ON COLUMN suspicious_activity_events.details IS 'Activity-specific details: duration, counts, locations';
COMMENT ON COLUMN suspicious_activity_events.alert_sent IS 'Set TRUE by the BEFORE INSERT trigger trg_suspicious_generate_alert when it created an alert (or by the service)';

-- =============================================================================
-- Monthly partitions for the current and the next month (UTC)
-- =============================================================================

DO $$
DECLARE
    v_table TEXT;
    v_month DATE;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['events', 'suspicious_activity_events'] LOOP
        FOR i IN 0 .. 1 LOOP
            v_month := (date_trunc('month', NOW() AT TIME ZONE 'UTC') + make_interval(months => i))::DATE;
            PERFORM fn_create_monthly_partition(v_table,
                                                EXTRACT(YEAR FROM v_month)::INTEGER,
                                                EXTRACT(MONTH FROM v_month)::INTEGER);
        END LOOP;
    END LOOP;
END $$;
