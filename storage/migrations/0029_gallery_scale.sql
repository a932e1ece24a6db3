-- 0029_gallery_scale.sql
-- A gallery of a million faces (storage/SCHEMA.md, "Gallery scale (0029)"). Not in the seeds.
-- Idempotent: every statement may run again on a migrated database.

-- =============================================================================
-- Embeddings stay in the heap row
-- =============================================================================
-- A 512-d float32 vector is 2,056 bytes: over PostgreSQL's 2 kB TOAST threshold, so with the type's
-- default (EXTENDED) every embedding went out of line, and the exact re-ranking of a two-stage
-- search paid a TOAST index lookup and two chunk reads per candidate. MAIN keeps a vector inline
-- while the row fits a page (any dimension up to pgvector's HNSW limit of 2,000 does); rows
-- written before this migration move when they are next rewritten.
ALTER TABLE face_embeddings ALTER COLUMN embedding SET STORAGE MAIN;

-- =============================================================================
-- The 1:N identification threshold
-- =============================================================================
-- match_threshold decides whether two faces are one person (1:1). Identifying a face among N
-- enrolled persons compares it with all of them: the best of N impostor scores grows with N, so at
-- a large gallery the 1:1 threshold names strangers. The calibration (`vigil models calibrate`,
-- FaceEmbeddingRepository.calibrate_identification) measures the gallery's own best impostor scores
-- and stores the threshold that keeps the false-positive identification rate at its target.
ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS identification_threshold DECIMAL(5,4);
ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS identification_calibration JSONB NOT NULL DEFAULT '{}';
ALTER TABLE model_versions DROP CONSTRAINT IF EXISTS chk_model_versions_identification_threshold;
ALTER TABLE model_versions ADD CONSTRAINT chk_model_versions_identification_threshold
    CHECK (identification_threshold IS NULL OR identification_threshold BETWEEN -1.0 AND 1.0);
COMMENT ON COLUMN model_versions.identification_threshold IS
    'Minimum cosine similarity for naming an enrolled person among the whole gallery (1:N); NULL = match_threshold. Set by the calibration; the effective threshold is the greater of the two';
COMMENT ON COLUMN model_versions.identification_calibration IS
    'How identification_threshold was measured: fpir, probes, gallery_faces, quantiles of the best impostor score, calibrated_at';
