-- 0005_face_recognition.sql
-- Seed section 5: face_embeddings, person_clusters, and the deferred FK
-- persons.primary_face_embedding_id (setup order steps 6-7).
--
-- Deviation (DESIGN.md "Database"): ONE face_embeddings table for every model
-- version. `embedding` is an unconstrained `vector` (no fixed dimension) and
-- `embedding_dim` records its length. The seed's single HNSW index on
-- vector(512) is replaced by one PARTIAL HNSW index per model version on the
-- cast expression, created by fn_ensure_embedding_index() when a model version
-- is registered in model_versions (trigger in 0012). Queries must use the same
-- expression and predicate:
--     SELECT id, person_id, (embedding::vector(512)) <=> $1::vector(512) AS distance
--     FROM face_embeddings
--     WHERE model_version = 'arcface-r100-v1'
--     ORDER BY embedding::vector(512) <=> $1::vector(512)
--     LIMIT 10;

-- =============================================================================
-- TABLE: face_embeddings
-- =============================================================================

CREATE TABLE IF NOT EXISTS face_embeddings (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    person_id       UUID NOT NULL,
    embedding       vector NOT NULL,            -- any dimension; must equal embedding_dim
    embedding_dim   INTEGER NOT NULL,           -- = vector_dims(embedding) = model_versions.embedding_dim
    source_image_path TEXT NOT NULL,            -- Path to source face crop image
    face_quality    DECIMAL(4,3) NOT NULL DEFAULT 0.0,
    -- Quality score: 0.000 to 1.000 (blur, pose, illumination)
    confidence      DECIMAL(4,3) NOT NULL DEFAULT 0.0,
    -- Detection confidence: 0.000 to 1.000
    model_version   TEXT NOT NULL,              -- model_versions.version_string that produced it
    is_primary      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_embeddings_person
        FOREIGN KEY (person_id)
        REFERENCES persons (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT chk_embedding_quality CHECK (face_quality BETWEEN 0.0 AND 1.0),
    CONSTRAINT chk_embedding_confidence CHECK (confidence BETWEEN 0.0 AND 1.0),
    CONSTRAINT chk_embedding_dim CHECK (embedding_dim = vector_dims(embedding)),
    -- HNSW on `vector` supports at most 2000 dimensions
    CONSTRAINT chk_embedding_dim_range CHECK (embedding_dim BETWEEN 1 AND 2000)
    -- fk_embeddings_model_version (model_version, embedding_dim) -> model_versions
    -- is added in 0012 once model_versions exists.
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_embeddings_person_id ON face_embeddings (person_id);
CREATE INDEX IF NOT EXISTS idx_embeddings_primary ON face_embeddings (is_primary) WHERE is_primary = TRUE;
CREATE INDEX IF NOT EXISTS idx_embeddings_model ON face_embeddings (model_version);

-- Keep vectors inline (up to a page; 2000-d still fits out of line). Under the default EXTENDED
-- storage every vector over ~2 KB (512-d) is TOASTed: each distance then detoasts a row, and the
-- planner, seeing a tiny heap, keeps choosing a sequential scan over the HNSW index.
ALTER TABLE face_embeddings ALTER COLUMN embedding SET STORAGE MAIN;
-- The seed's idx_embeddings_hnsw (USING hnsw (embedding vector_cosine_ops)) cannot be
-- built on a dimensionless column; it is replaced by the per-model-version partial
-- indexes created by fn_ensure_embedding_index() below.

-- Comments
COMMENT ON TABLE face_embeddings IS 'Face recognition vectors of all model versions with per-version partial HNSW indexes';
COMMENT ON COLUMN face_embeddings.embedding IS
    'Face descriptor of model_version, dimension embedding_dim (e.g. 512 ArcFace, 128 SFace). Search with ORDER BY embedding::vector(D) <=> $q::vector(D) WHERE model_version = ''...'' so the per-version HNSW index is used. <=> is cosine distance.';
COMMENT ON COLUMN face_embeddings.embedding_dim IS 'Number of dimensions of embedding; checked = vector_dims(embedding) and = model_versions.embedding_dim (composite FK)';
COMMENT ON COLUMN face_embeddings.model_version IS 'model_versions.version_string of the embedder; embeddings are only compared within one model version';
COMMENT ON COLUMN face_embeddings.is_primary IS 'Primary embedding used for one-to-many recognition';

-- Add deferred foreign key from persons.primary_face_embedding_id
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint
                   WHERE conname = 'fk_persons_primary_embedding'
                     AND conrelid = 'persons'::regclass) THEN
        ALTER TABLE persons
            ADD CONSTRAINT fk_persons_primary_embedding
            FOREIGN KEY (primary_face_embedding_id)
            REFERENCES face_embeddings (id)
            ON DELETE SET NULL
            ON UPDATE CASCADE
            DEFERRABLE INITIALLY DEFERRED;
    END IF;
END $$;

-- =============================================================================
-- FUNCTION: fn_ensure_embedding_index
-- Creates (idempotently) the partial HNSW index for one model version:
--   CREATE INDEX idx_face_embeddings_hnsw_<md5(version)[1:16]>_d<dim>
--       ON face_embeddings USING hnsw ((embedding::vector(<dim>)) vector_cosine_ops)
--       WITH (m = 16, ef_construction = 64)
--       WHERE model_version = '<version>';
-- The name is derived from md5(version) so any version string is safe. An index
-- left over for the same version with another dimension is dropped (it would make
-- inserts of the new dimension fail). SECURITY DEFINER: callable from vigil_app
-- (via the model_versions trigger) although only the owner may create indexes.
-- =============================================================================

CREATE OR REPLACE FUNCTION fn_ensure_embedding_index(p_model_version TEXT, p_dim INTEGER)
RETURNS TEXT
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_hash   TEXT;
    v_name   TEXT;
    v_stale  RECORD;
BEGIN
    IF p_model_version IS NULL OR btrim(p_model_version) = '' THEN
        RAISE EXCEPTION 'fn_ensure_embedding_index: model version must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_dim IS NULL OR p_dim < 1 OR p_dim > 2000 THEN
        RAISE EXCEPTION 'fn_ensure_embedding_index: dimension % out of range 1..2000 (HNSW limit for vector)', p_dim
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    v_hash := substr(md5(p_model_version), 1, 16);
    v_name := format('idx_face_embeddings_hnsw_%s_d%s', v_hash, p_dim);

    -- Serialise concurrent registrations of the same version.
    PERFORM pg_advisory_xact_lock(hashtext('vigil.embedding_index'), hashtext(p_model_version));

    -- Drop indexes of the same version built for another dimension.
    FOR v_stale IN
        SELECT ic.relname
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        WHERE i.indrelid = 'face_embeddings'::regclass
          AND ic.relname LIKE 'idx\_face\_embeddings\_hnsw\_' || v_hash || '\_d%'
          AND ic.relname <> v_name
    LOOP
        EXECUTE format('DROP INDEX IF EXISTS %I', v_stale.relname);
    END LOOP;

    EXECUTE format(
        'CREATE INDEX IF NOT EXISTS %I ON face_embeddings '
        'USING hnsw ((embedding::vector(%s)) vector_cosine_ops) '
        'WITH (m = 16, ef_construction = 64) '
        'WHERE model_version = %L',
        v_name, p_dim, p_model_version);

    EXECUTE format('COMMENT ON INDEX %I IS %L', v_name,
        format('HNSW (cosine) index for face_embeddings of model version %s, %s dimensions', p_model_version, p_dim));

    RETURN v_name;
END;
$$;

COMMENT ON FUNCTION fn_ensure_embedding_index(TEXT, INTEGER) IS
    'Idempotently create the partial HNSW index ((embedding::vector(dim)) vector_cosine_ops) WHERE model_version = version; returns the index name. Called by the model_versions trigger.';

-- =============================================================================
-- TABLE: person_clusters
-- =============================================================================

CREATE TABLE IF NOT EXISTS person_clusters (
    id                      UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    cluster_label           VARCHAR(50) NOT NULL,   -- Auto-generated label: "Unknown-001"
    representative_embedding_id UUID,               -- Best face representing this cluster
    sample_count            INTEGER NOT NULL DEFAULT 0,
    first_seen              TIMESTAMPTZ NOT NULL,
    last_seen               TIMESTAMPTZ NOT NULL,
    status                  cluster_status_enum NOT NULL DEFAULT 'active',
    merged_into_cluster_id  UUID,                   -- Self-reference for cluster merges
    created_at              TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT uq_clusters_label UNIQUE (cluster_label),
    CONSTRAINT fk_clusters_representative
        FOREIGN KEY (representative_embedding_id)
        REFERENCES face_embeddings (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT fk_clusters_merged_into
        FOREIGN KEY (merged_into_cluster_id)
        REFERENCES person_clusters (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_clusters_status ON person_clusters (status);
CREATE INDEX IF NOT EXISTS idx_clusters_merged_into ON person_clusters (merged_into_cluster_id) WHERE merged_into_cluster_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_clusters_first_seen ON person_clusters (first_seen);
CREATE INDEX IF NOT EXISTS idx_clusters_last_seen ON person_clusters (last_seen);

-- Comments
COMMENT ON TABLE person_clusters IS 'Unknown person clustering for operator review';
COMMENT ON COLUMN person_clusters.merged_into_cluster_id IS 'Reference to consolidated cluster when duplicates are merged';
