-- 0011_media.sql
-- Seed section 10: media_files, video_clips (setup order step 12).
-- Files live in object storage (MinIO API); these tables are the index.
-- media_files.event_id / video_clips.event_id are not FK-enforced (events is
-- partitioned with PRIMARY KEY (id, timestamp)).

-- =============================================================================
-- TABLE: media_files
-- =============================================================================

CREATE TABLE IF NOT EXISTS media_files (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    file_type       media_file_type_enum NOT NULL,
    storage_path    TEXT NOT NULL,              -- Object storage path: s3://bucket/camera_id/2024/01/15/filename.jpg
    file_size       BIGINT NOT NULL,            -- Size in bytes
    checksum        VARCHAR(64) NOT NULL,       -- SHA-256 hex digest
    camera_id       UUID NOT NULL,
    event_id        UUID,                       -- Associated event (if applicable)
    timestamp       TIMESTAMPTZ NOT NULL,
    retention_until TIMESTAMPTZ NOT NULL,       -- Auto-delete after this date
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_media_camera
        FOREIGN KEY (camera_id)
        REFERENCES cameras (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_media_files_camera_id ON media_files (camera_id);
CREATE INDEX IF NOT EXISTS idx_media_files_timestamp ON media_files (timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_media_files_event_id ON media_files (event_id) WHERE event_id IS NOT NULL;
-- Seed: ... WHERE retention_until < NOW() + INTERVAL '7 days' is rejected by PostgreSQL
-- (index predicates must be IMMUTABLE; NOW() is not). A plain index serves the same
-- "expiring soon / expired" range scans.
CREATE INDEX IF NOT EXISTS idx_media_files_retention ON media_files (retention_until);

-- Comments
COMMENT ON TABLE media_files IS 'Registry of stored media with retention management';
COMMENT ON COLUMN media_files.storage_path IS 'Object storage URI - files stored externally (S3/MinIO)';
COMMENT ON COLUMN media_files.retention_until IS
    'After this time (+7 days grace) the application deletes the object from object storage, then the row (fn_cleanup_expired_media)';

-- =============================================================================
-- TABLE: video_clips
-- =============================================================================

CREATE TABLE IF NOT EXISTS video_clips (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    media_file_id   UUID NOT NULL,
    duration        DECIMAL(8,2) NOT NULL,      -- Duration in seconds
    start_time      TIMESTAMPTZ NOT NULL,
    end_time        TIMESTAMPTZ NOT NULL,
    camera_id       UUID NOT NULL,
    event_id        UUID,                       -- Triggering event
    format          VARCHAR(10) NOT NULL DEFAULT 'mp4',  -- mp4, mkv, avi
    size_bytes      BIGINT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_clips_media
        FOREIGN KEY (media_file_id)
        REFERENCES media_files (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT fk_clips_camera
        FOREIGN KEY (camera_id)
        REFERENCES cameras (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT chk_clips_duration CHECK (duration > 0),
    CONSTRAINT chk_clips_time_range CHECK (end_time > start_time)
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_video_clips_camera_id ON video_clips (camera_id);
CREATE INDEX IF NOT EXISTS idx_video_clips_start_time ON video_clips (start_time DESC);
CREATE INDEX IF NOT EXISTS idx_video_clips_event_id ON video_clips (event_id) WHERE event_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_video_clips_camera_time ON video_clips (camera_id, start_time DESC);
-- Not in the seed: the FK column is used by the cascade from media_files and by
-- fn_cleanup_expired_media; without an index every media_files delete scans video_clips.
CREATE INDEX IF NOT EXISTS idx_video_clips_media_file_id ON video_clips (media_file_id);

-- Comments
COMMENT ON TABLE video_clips IS 'Video clip metadata for incident review';
