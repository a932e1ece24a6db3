-- 0015_api_keys_exports_searches.sql
-- From chronotrace-schema.md, ONLY api_keys, searches and exports, adapted to this
-- schema (details and reasons in storage/SCHEMA.md):
--   * user references -> users(id) UUID; TIMESTAMP -> TIMESTAMPTZ; JSONB NOT NULL;
--   * api_keys: bound to a surveillance RBAC role (role user_role_enum NOT NULL),
--     optional user_id and site_id restrictions, per-minute rate limit;
--   * searches: Nova/Qdrant timings renamed to embed/vector timings, face searches
--     record the model_version, query_text nullable (image/face searches);
--   * exports: ChronoTrace video segments -> this schema's events / media_files /
--     cameras; query_id -> search_id FK; file_path + s3_key -> storage_path.

-- =============================================================================
-- TABLE: api_keys
-- =============================================================================

CREATE TABLE IF NOT EXISTS api_keys (
    id                      UUID PRIMARY KEY DEFAULT gen_random_uuid(),

    -- Binding
    role                    user_role_enum NOT NULL,    -- RBAC role the key acts with (roles.name)
    user_id                 UUID,                       -- optional: key acts as this user (RLS: user_site_assignments)
    site_id                 UUID,                       -- optional: key limited to this site

    -- Key Information
    key_hash                VARCHAR(255) NOT NULL,      -- hex SHA-256 of the full key (never the key)
    key_prefix              VARCHAR(16) NOT NULL,       -- first characters, shown to identify the key
    name                    VARCHAR(100),               -- user-friendly name
    description             TEXT,

    -- Permissions
    scopes                  TEXT[] NOT NULL DEFAULT '{}',
    -- Optional narrowing of the role, as "<resource>:<action>" from roles.permissions,
    -- e.g. {'events:read','alerts:acknowledge'}; empty = everything the role allows.

    -- Rate Limiting
    rate_limit_per_minute   INTEGER NOT NULL DEFAULT 60,

    -- Usage Tracking
    last_used_at            TIMESTAMPTZ,
    request_count           BIGINT NOT NULL DEFAULT 0,

    -- Status
    is_active               BOOLEAN NOT NULL DEFAULT TRUE,

    -- Timestamps
    created_by              UUID,                       -- user who issued the key
    created_at              TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    expires_at              TIMESTAMPTZ,                -- optional expiration
    revoked_at              TIMESTAMPTZ,                -- set once, never cleared

    -- Metadata
    metadata                JSONB NOT NULL DEFAULT '{}',

    -- Constraints
    CONSTRAINT uq_api_keys_key_hash UNIQUE (key_hash),
    CONSTRAINT fk_api_keys_user
        FOREIGN KEY (user_id)
        REFERENCES users (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT fk_api_keys_site
        FOREIGN KEY (site_id)
        REFERENCES sites (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT fk_api_keys_created_by
        FOREIGN KEY (created_by)
        REFERENCES users (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT check_rate_limits_positive CHECK (rate_limit_per_minute > 0),
    -- Guards against storing a raw key by mistake
    CONSTRAINT chk_api_keys_key_hash_format CHECK (key_hash ~ '^[0-9a-f]{64}$'),
    CONSTRAINT chk_api_keys_expiry CHECK (expires_at IS NULL OR expires_at > created_at)
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_api_keys_user_id ON api_keys (user_id);
CREATE INDEX IF NOT EXISTS idx_api_keys_key_hash ON api_keys (key_hash);
CREATE INDEX IF NOT EXISTS idx_api_keys_is_active ON api_keys (is_active);
CREATE INDEX IF NOT EXISTS idx_api_keys_expires_at ON api_keys (expires_at)
    WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_api_keys_key_prefix ON api_keys (key_prefix);
CREATE INDEX IF NOT EXISTS idx_api_keys_site_id ON api_keys (site_id) WHERE site_id IS NOT NULL;

-- Comments
COMMENT ON TABLE api_keys IS
    'API keys for external integrations: hashed, bound to an RBAC role, optionally to a user and/or a site, scoped, rate-limited, expiring, revocable';
COMMENT ON COLUMN api_keys.key_hash IS
    'Lowercase hex SHA-256 of the full (high-entropy, randomly generated) key; the key itself is shown once and never stored. Redacted from audit_logs.';
COMMENT ON COLUMN api_keys.key_prefix IS 'Leading characters of the key (e.g. "vgl_live_Ab") to identify it in listings and logs';
COMMENT ON COLUMN api_keys.role IS
    'RBAC role (roles.name) the key acts with; the application must not issue a key with more rights than its issuer / bound user';
COMMENT ON COLUMN api_keys.user_id IS
    'Optional: the key acts as this user (app.current_user_id is set to it, so RLS site isolation follows user_site_assignments). NULL = service key.';
COMMENT ON COLUMN api_keys.site_id IS 'Optional: the key may only access this site (enforced by the application); NULL = not site-restricted beyond role/user';
COMMENT ON COLUMN api_keys.scopes IS
    'Optional narrowing of the role''s permissions as "<resource>:<action>" strings (roles.permissions keys); empty array = everything the role allows';
COMMENT ON COLUMN api_keys.rate_limit_per_minute IS 'Maximum requests per minute for this key (enforced by the control plane, e.g. in Redis)';
COMMENT ON COLUMN api_keys.revoked_at IS 'When set the key is permanently revoked; is_active = FALSE only suspends it';

-- =============================================================================
-- TABLE: searches
-- =============================================================================

CREATE TABLE IF NOT EXISTS searches (
    -- Primary Key
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),

    -- Who
    user_id             UUID,
    api_key_id          UUID,                   -- set when the search came in with an API key

    -- Query Information
    query_text          TEXT,                   -- NULL for face / image searches
    query_type          VARCHAR(50) NOT NULL DEFAULT 'text',
    -- 'text' (attribute / free text), 'face' (probe face embedding), 'image' (probe image),
    -- 'person' (sightings of a person), 'event' (structured event filter)
    model_version       TEXT,                   -- face searches: embedder version searched

    -- Filters Applied
    filters             JSONB NOT NULL DEFAULT '{}',
    -- Example: {
    --   "camera_ids": ["uuid", "uuid"], "site_ids": ["uuid"],
    --   "start_time": "2024-02-09T00:00:00Z", "end_time": "2024-02-09T23:59:59Z",
    --   "event_types": ["person_recognized"], "min_confidence": 0.7, "person_id": "uuid"
    -- }

    -- Results
    result_count        INTEGER,
    top_score           DECIMAL(5,4),           -- Highest similarity score

    -- Performance Metrics
    execution_time_ms   INTEGER,                -- Total query time
    embed_time_ms       INTEGER,                -- Time to compute the probe embedding (ChronoTrace: nova_time_ms)
    vector_time_ms      INTEGER,                -- Time for the pgvector search (ChronoTrace: qdrant_time_ms)
    db_time_ms          INTEGER,                -- Time for the other PostgreSQL queries

    -- Cache Status
    cache_hit           BOOLEAN NOT NULL DEFAULT FALSE,

    -- Context
    session_id          VARCHAR(255),
    ip_address          INET,
    user_agent          TEXT,

    -- Timestamps
    created_at          TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Metadata
    metadata            JSONB NOT NULL DEFAULT '{}',

    -- Constraints
    CONSTRAINT fk_searches_user
        FOREIGN KEY (user_id)
        REFERENCES users (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT fk_searches_api_key
        FOREIGN KEY (api_key_id)
        REFERENCES api_keys (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT fk_searches_model_version
        FOREIGN KEY (model_version)
        REFERENCES model_versions (version_string)
        ON DELETE SET NULL
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_searches_user_id ON searches (user_id);
CREATE INDEX IF NOT EXISTS idx_searches_created_at ON searches (created_at);
CREATE INDEX IF NOT EXISTS idx_searches_query_text ON searches USING GIN (to_tsvector('english', query_text));
CREATE INDEX IF NOT EXISTS idx_searches_cache_hit ON searches (cache_hit);
CREATE INDEX IF NOT EXISTS idx_searches_filters ON searches USING GIN (filters);
CREATE INDEX IF NOT EXISTS idx_searches_performance ON searches (execution_time_ms, created_at);
CREATE INDEX IF NOT EXISTS idx_searches_api_key_id ON searches (api_key_id) WHERE api_key_id IS NOT NULL;

-- Comments
COMMENT ON TABLE searches IS 'Log of search queries (face, person, event, text) for analytics and debugging; purge rows older than 90 days';
COMMENT ON COLUMN searches.model_version IS 'For face searches: model_versions.version_string whose embeddings were searched';

-- =============================================================================
-- TABLE: exports
-- =============================================================================

CREATE TABLE IF NOT EXISTS exports (
    -- Primary Key
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),

    -- Who
    user_id             UUID NOT NULL,
    api_key_id          UUID,

    -- Export Type
    export_type         VARCHAR(50) NOT NULL,
    -- Types: 'video_clip', 'snapshot_bundle', 'pdf_report', 'csv_data', 'json_data'

    -- Content (ChronoTrace segment_ids / query_id adapted to this schema)
    search_id           UUID,                   -- search whose results are exported
    camera_id           UUID,                   -- camera of a time-range clip export
    time_from           TIMESTAMPTZ,            -- time range of a clip export
    time_to             TIMESTAMPTZ,
    event_ids           UUID[],                 -- events.id values (not FK-enforced: partitioned)
    media_file_ids      UUID[],                 -- media_files.id values to include

    -- File Information
    storage_path        TEXT,                   -- object storage key of the produced file
    file_size_bytes     BIGINT,
    checksum            VARCHAR(64),            -- SHA-256 hex of the produced file
    format              VARCHAR(20),            -- 'mp4', 'zip', 'pdf', 'csv', 'json'

    -- Processing Status
    status              VARCHAR(50) NOT NULL DEFAULT 'pending',
    error_message       TEXT,

    -- Timestamps
    created_at          TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    completed_at        TIMESTAMPTZ,
    expires_at          TIMESTAMPTZ,            -- download link expiration
    downloaded_at       TIMESTAMPTZ,

    -- Metadata
    metadata            JSONB NOT NULL DEFAULT '{}',
    -- Example: {
    --   "include_metadata": true,
    --   "include_thumbnails": true,
    --   "watermark": "EVIDENCE - CASE-2024-0001"
    -- }

    -- Constraints
    CONSTRAINT fk_exports_user
        FOREIGN KEY (user_id)
        REFERENCES users (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT fk_exports_api_key
        FOREIGN KEY (api_key_id)
        REFERENCES api_keys (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT fk_exports_search
        FOREIGN KEY (search_id)
        REFERENCES searches (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT fk_exports_camera
        FOREIGN KEY (camera_id)
        REFERENCES cameras (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT chk_exports_status
        CHECK (status IN ('pending', 'processing', 'completed', 'failed', 'expired')),
    CONSTRAINT chk_exports_time_range
        CHECK (time_from IS NULL OR time_to IS NULL OR time_to > time_from)
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_exports_user_id ON exports (user_id);
CREATE INDEX IF NOT EXISTS idx_exports_status ON exports (status);
CREATE INDEX IF NOT EXISTS idx_exports_created_at ON exports (created_at DESC);
CREATE INDEX IF NOT EXISTS idx_exports_expires_at ON exports (expires_at)
    WHERE status = 'completed';
-- ChronoTrace idx_exports_segments (GIN on segment_ids) -> event_ids / media_file_ids
CREATE INDEX IF NOT EXISTS idx_exports_event_ids ON exports USING GIN (event_ids);
CREATE INDEX IF NOT EXISTS idx_exports_media_file_ids ON exports USING GIN (media_file_ids);
CREATE INDEX IF NOT EXISTS idx_exports_search_id ON exports (search_id) WHERE search_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_exports_camera_id ON exports (camera_id) WHERE camera_id IS NOT NULL;

-- Comments
COMMENT ON TABLE exports IS 'Evidence / report export requests and the produced files (object storage)';
COMMENT ON COLUMN exports.event_ids IS 'events.id values to export (events is partitioned, so not FK-enforced)';
COMMENT ON COLUMN exports.media_file_ids IS 'media_files.id values (snapshots / clips) to export; array, not FK-enforced';
COMMENT ON COLUMN exports.storage_path IS 'Object storage key of the produced export file (ChronoTrace file_path + s3_key)';
