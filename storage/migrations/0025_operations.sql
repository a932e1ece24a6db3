-- 0025_operations.sql
-- Operations: scheduled job runs, clip requests cut from the nodes' ring buffers, media purge
-- marks and device alerts. Not in the seeds; explained in storage/SCHEMA.md ("Operations (0025)").
--   * scheduled_job_runs: one row per run of a scheduled job (which replica, when, how long, outcome).
--   * clip_requests: a clip asked for (by an alert or MediaService.RequestClip) and its production state.
--   * video_clips.alert_id: the alert a clip documents.
--   * media_files.purging_at: set (and committed) before the retention job deletes the object;
--     readers treat a marked row as deleted, so no reader ever sees a row whose object is gone.
--   * alerts.device_type / device_id: an alert raised for a camera or DVR going offline, which has
--     neither an event nor a suspicious activity.

-- =============================================================================
-- TABLE: scheduled_job_runs
-- =============================================================================

CREATE TABLE IF NOT EXISTS scheduled_job_runs (
    id              BIGINT GENERATED ALWAYS AS IDENTITY,
    job_name        VARCHAR(64) NOT NULL,
    replica         VARCHAR(200) NOT NULL,      -- host:pid of the control-plane replica that ran it
    started_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    finished_at     TIMESTAMPTZ,                -- NULL while running (or when the replica died mid-run)
    outcome         VARCHAR(10) NOT NULL DEFAULT 'running',
    detail          JSONB NOT NULL DEFAULT '{}'::JSONB,   -- what the run did (counts, names)
    error           TEXT,

    CONSTRAINT pk_scheduled_job_runs PRIMARY KEY (id),
    CONSTRAINT chk_job_runs_outcome CHECK (outcome IN ('running', 'succeeded', 'failed')),
    CONSTRAINT chk_job_runs_error CHECK (error IS NULL OR length(error) <= 2000)
);

CREATE INDEX IF NOT EXISTS idx_job_runs_job_started ON scheduled_job_runs (job_name, started_at DESC);

COMMENT ON TABLE scheduled_job_runs IS
    'Runs of the control plane''s scheduled jobs (one replica at a time per job); pruned after 30 days';

-- =============================================================================
-- TABLE: clip_requests
-- =============================================================================

CREATE TABLE IF NOT EXISTS clip_requests (
    id              UUID NOT NULL DEFAULT gen_random_uuid(),
    camera_id       UUID NOT NULL,
    event_id        UUID,                       -- no FK: events is partitioned
    alert_id        UUID,
    start_time      TIMESTAMPTZ NOT NULL,
    end_time        TIMESTAMPTZ NOT NULL,
    state           VARCHAR(10) NOT NULL DEFAULT 'pending',
    node_id         UUID,                       -- the node that claimed it (no FK: nodes may be deleted)
    claimed_at      TIMESTAMPTZ,
    attempts        INTEGER NOT NULL DEFAULT 0,
    storage_path    TEXT,                       -- object key the node writes; known before the upload
    video_clip_id   UUID,
    error           TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    completed_at    TIMESTAMPTZ,

    CONSTRAINT pk_clip_requests PRIMARY KEY (id),
    CONSTRAINT fk_clip_requests_camera FOREIGN KEY (camera_id) REFERENCES cameras (id)
        ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT fk_clip_requests_alert FOREIGN KEY (alert_id) REFERENCES alerts (id)
        ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT fk_clip_requests_clip FOREIGN KEY (video_clip_id) REFERENCES video_clips (id)
        ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT chk_clip_requests_state CHECK (state IN ('pending', 'processing', 'ready', 'failed')),
    CONSTRAINT chk_clip_requests_range CHECK (end_time > start_time AND end_time - start_time <= INTERVAL '10 minutes'),
    CONSTRAINT chk_clip_requests_error CHECK (error IS NULL OR length(error) <= 2000)
);

CREATE INDEX IF NOT EXISTS idx_clip_requests_open ON clip_requests (camera_id, end_time)
    WHERE state IN ('pending', 'processing');
CREATE INDEX IF NOT EXISTS idx_clip_requests_alert_id ON clip_requests (alert_id) WHERE alert_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_clip_requests_created_at ON clip_requests (created_at);

COMMENT ON TABLE clip_requests IS
    'Clips asked of the pipeline nodes (MediaService Clip): pending until the node running the camera claims it';

-- =============================================================================
-- Columns
-- =============================================================================

ALTER TABLE video_clips ADD COLUMN IF NOT EXISTS alert_id UUID;
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'fk_video_clips_alert') THEN
        ALTER TABLE video_clips ADD CONSTRAINT fk_video_clips_alert FOREIGN KEY (alert_id) REFERENCES alerts (id)
            ON DELETE SET NULL ON UPDATE CASCADE;
    END IF;
END $$;
CREATE INDEX IF NOT EXISTS idx_video_clips_alert_id ON video_clips (alert_id) WHERE alert_id IS NOT NULL;

ALTER TABLE media_files ADD COLUMN IF NOT EXISTS purging_at TIMESTAMPTZ;
COMMENT ON COLUMN media_files.purging_at IS
    'Set when the retention job starts deleting the object; the row counts as deleted from then on';

ALTER TABLE alerts ADD COLUMN IF NOT EXISTS device_type VARCHAR(20);
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS device_id UUID;
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS chk_alerts_source;
ALTER TABLE alerts ADD CONSTRAINT chk_alerts_source
    CHECK (event_id IS NOT NULL OR suspicious_activity_id IS NOT NULL OR device_id IS NOT NULL);
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS chk_alerts_device;
ALTER TABLE alerts ADD CONSTRAINT chk_alerts_device
    CHECK ((device_type IS NULL) = (device_id IS NULL) AND (device_type IS NULL OR device_type IN ('camera', 'dvr')));
CREATE INDEX IF NOT EXISTS idx_alerts_device ON alerts (device_id, status) WHERE device_id IS NOT NULL;
COMMENT ON COLUMN alerts.device_id IS
    'Camera or DVR (device_type) whose connectivity raised the alert; no event or activity then';

GRANT SELECT, INSERT, UPDATE, DELETE ON scheduled_job_runs, clip_requests TO vigil_app;
