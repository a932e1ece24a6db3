-- 0012_ml_pipeline.sql
-- Seed section 11: training_datasets, training_jobs, model_versions (setup order
-- step 13), plus the model-version registry glue for face_embeddings:
--   * model_versions gains embedding_dim and match_threshold (DESIGN.md: the
--     dimension and the distance threshold belong to the model version);
--   * version_string (the identifier stored in face_embeddings.model_version) is
--     widened from VARCHAR(20) to TEXT (<= 100 chars), and so are the
--     training_jobs.model_version_from/to columns that name versions;
--   * face_embeddings (model_version, embedding_dim) references
--     model_versions (version_string, embedding_dim);
--   * trigger trg_model_versions_embedding_index calls fn_ensure_embedding_index()
--     when a version with an embedding_dim is registered.

-- =============================================================================
-- TABLE: training_datasets
-- =============================================================================

CREATE TABLE IF NOT EXISTS training_datasets (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            VARCHAR(200) NOT NULL,
    description     TEXT,
    person_ids      JSONB NOT NULL DEFAULT '[]',  -- UUID array of included persons
    sample_count    INTEGER NOT NULL DEFAULT 0,
    version         VARCHAR(20) NOT NULL,
    status          training_status_enum NOT NULL DEFAULT 'building',
    created_by      UUID NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_datasets_creator
        FOREIGN KEY (created_by)
        REFERENCES users (id)
        ON DELETE RESTRICT
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_datasets_status ON training_datasets (status);
CREATE INDEX IF NOT EXISTS idx_datasets_created_by ON training_datasets (created_by);

-- Comments
COMMENT ON TABLE training_datasets IS 'Curated face datasets for model training';

-- =============================================================================
-- TABLE: training_jobs
-- =============================================================================

CREATE TABLE IF NOT EXISTS training_jobs (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    dataset_id          UUID NOT NULL,
    model_version_from  VARCHAR(100),           -- Base model version (NULL = from scratch)
    model_version_to    VARCHAR(100) NOT NULL,  -- Target/new model version
    status              training_job_status_enum NOT NULL DEFAULT 'queued',
    started_at          TIMESTAMPTZ,
    completed_at        TIMESTAMPTZ,
    metrics             JSONB NOT NULL DEFAULT '{}',
    -- Format: {"accuracy": 0.982, "precision": 0.975, "recall": 0.968,
    --          "f1_score": 0.971, "epoch_count": 50, "training_time_seconds": 7200,
    --          "validation_loss": [0.45, 0.32, 0.21, ...]}
    approved_by         UUID,
    approved_at         TIMESTAMPTZ,
    created_at          TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_jobs_dataset
        FOREIGN KEY (dataset_id)
        REFERENCES training_datasets (id)
        ON DELETE RESTRICT
        ON UPDATE CASCADE,
    CONSTRAINT fk_jobs_approved_by
        FOREIGN KEY (approved_by)
        REFERENCES users (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_training_jobs_status ON training_jobs (status);
CREATE INDEX IF NOT EXISTS idx_training_jobs_dataset_id ON training_jobs (dataset_id);

-- Comments
COMMENT ON TABLE training_jobs IS 'Model training job tracking and approval workflow';

-- =============================================================================
-- TABLE: model_versions
-- =============================================================================

CREATE TABLE IF NOT EXISTS model_versions (
    id                      UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    version_string          TEXT NOT NULL,              -- "arcface-r100-v1", "sface-2021dec", "2.3.1"
    training_job_id         UUID,
    embedding_dim           INTEGER,                    -- embedder output size; NULL for non-embedding models
    match_threshold         DECIMAL(5,4),               -- minimum cosine similarity for a face match
    metrics                 JSONB NOT NULL DEFAULT '{}',
    -- Format: {"top1_accuracy": 0.982, "top5_accuracy": 0.997,
    --          "inference_time_ms": 12, "model_size_mb": 45.2}
    is_production           BOOLEAN NOT NULL DEFAULT FALSE,
    is_rollback_available   BOOLEAN NOT NULL DEFAULT TRUE,
    deployed_at             TIMESTAMPTZ,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT uq_model_versions_string UNIQUE (version_string),
    -- Target of the composite FK from face_embeddings (dimension must match the model)
    CONSTRAINT uq_model_versions_string_dim UNIQUE (version_string, embedding_dim),
    CONSTRAINT chk_model_versions_string CHECK (char_length(version_string) BETWEEN 1 AND 100),
    CONSTRAINT chk_model_versions_embedding_dim CHECK (embedding_dim IS NULL OR embedding_dim BETWEEN 1 AND 2000),
    CONSTRAINT chk_model_versions_match_threshold CHECK (match_threshold IS NULL OR match_threshold BETWEEN -1.0 AND 1.0),
    CONSTRAINT fk_model_versions_job
        FOREIGN KEY (training_job_id)
        REFERENCES training_jobs (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_model_versions_version ON model_versions (version_string);
CREATE INDEX IF NOT EXISTS idx_model_versions_production ON model_versions (is_production) WHERE is_production = TRUE;
CREATE INDEX IF NOT EXISTS idx_model_versions_rollback ON model_versions (is_rollback_available) WHERE is_rollback_available = TRUE;

-- Constraint: Only one production model (partial unique index approach)
CREATE UNIQUE INDEX IF NOT EXISTS idx_model_versions_one_production
    ON model_versions (is_production)
    WHERE is_production = TRUE;

-- Comments
COMMENT ON TABLE model_versions IS 'Model registry with deployment and rollback tracking';
COMMENT ON COLUMN model_versions.is_production IS 'Only one model should be production at a time (enforced by application)';
COMMENT ON COLUMN model_versions.version_string IS
    'Model version identifier; face_embeddings.model_version holds this string. Registering a version with embedding_dim creates its partial HNSW index.';
COMMENT ON COLUMN model_versions.embedding_dim IS
    'Embedding dimension of this (face embedder) model, e.g. 512 ArcFace, 128 SFace; NULL for models that emit no embeddings';
COMMENT ON COLUMN model_versions.match_threshold IS
    'Minimum cosine similarity (1 - (a <=> b)) for two embeddings of this model to be the same person, i.e. match when distance <= 1 - match_threshold';

-- face_embeddings (model_version, embedding_dim) -> model_versions (version_string, embedding_dim)
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'fk_embeddings_model_version'
                     AND conrelid = 'face_embeddings'::regclass) THEN
        ALTER TABLE face_embeddings
            ADD CONSTRAINT fk_embeddings_model_version
            FOREIGN KEY (model_version, embedding_dim)
            REFERENCES model_versions (version_string, embedding_dim)
            ON DELETE RESTRICT
            ON UPDATE RESTRICT;
    END IF;
END $$;

-- =============================================================================
-- FUNCTION + TRIGGER: create the per-version HNSW index on registration
-- =============================================================================

CREATE OR REPLACE FUNCTION fn_model_versions_embedding_index()
RETURNS TRIGGER
LANGUAGE plpgsql
SET search_path = public, pg_temp
AS $$
BEGIN
    IF NEW.embedding_dim IS NOT NULL THEN
        PERFORM fn_ensure_embedding_index(NEW.version_string, NEW.embedding_dim);
    END IF;
    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION fn_model_versions_embedding_index() IS
    'Trigger: create the partial HNSW index of a model version (fn_ensure_embedding_index) when it is registered or its dimension is set';

DROP TRIGGER IF EXISTS trg_model_versions_embedding_index ON model_versions;
CREATE TRIGGER trg_model_versions_embedding_index
    AFTER INSERT OR UPDATE OF version_string, embedding_dim ON model_versions
    FOR EACH ROW
    EXECUTE FUNCTION fn_model_versions_embedding_index();
