-- 0027_face_search.sql
-- Face search accounted for. Explained in storage/SCHEMA.md ("Face search (0027)").
--   * searches.*_time_ms: fractional milliseconds (REAL). A face search's vector part takes about a
--     millisecond; whole milliseconds would record most of them as 0 or 1.
-- Idempotent: every statement may run again on a migrated database.

ALTER TABLE searches ALTER COLUMN execution_time_ms TYPE REAL;
ALTER TABLE searches ALTER COLUMN embed_time_ms TYPE REAL;
ALTER TABLE searches ALTER COLUMN vector_time_ms TYPE REAL;
ALTER TABLE searches ALTER COLUMN db_time_ms TYPE REAL;
COMMENT ON COLUMN searches.embed_time_ms IS 'Milliseconds computing the probe embedding (image queries: decode, detect, align, embed)';
COMMENT ON COLUMN searches.vector_time_ms IS 'Milliseconds in the pgvector k-NN search';
COMMENT ON COLUMN searches.db_time_ms IS 'Milliseconds in the other PostgreSQL queries (model, filters, persons)';
COMMENT ON COLUMN searches.execution_time_ms IS 'Milliseconds the whole search took, as the server measured it';
CREATE INDEX IF NOT EXISTS idx_searches_query_type_created_at ON searches (query_type, created_at DESC);

-- =============================================================================
-- Index design per model version
--   * model_versions.index_params: how the version's gallery is indexed and searched (JSON object;
--     keys left out take the defaults, which are the index every version had before 0027):
--       storage          'vector' (float32, default), 'halfvec' (float16) or 'bit' (binary-quantised)
--       m                HNSW m, 2..100 (default 16)
--       ef_construction  HNSW ef_construction, >= 2 m (default 64)
--       ef_search        hnsw.ef_search of a search (default 64)
--       rerank           0: one stage, the index's order is the answer; N > 0: the index yields N
--                        candidates that are re-ranked by exact cosine on the stored float32 vectors
--                        ('bit' requires it)
--     Read by storage/repositories/faces.py (IndexParams) and fn_ensure_embedding_index.
--   * fn_ensure_embedding_index builds the version's index as its index_params say; a version with
--     the default parameters keeps the index name it had, other parameters name them in the index
--     name, so that changing them replaces the index (the trigger fires on index_params too).
-- =============================================================================

ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS index_params JSONB NOT NULL DEFAULT '{}';
ALTER TABLE model_versions DROP CONSTRAINT IF EXISTS chk_model_versions_index_params;
ALTER TABLE model_versions ADD CONSTRAINT chk_model_versions_index_params CHECK (
    jsonb_typeof(index_params) = 'object'
    AND coalesce(index_params ->> 'storage', 'vector') IN ('vector', 'halfvec', 'bit')
    AND coalesce((index_params ->> 'm')::int, 16) BETWEEN 2 AND 100
    AND coalesce((index_params ->> 'ef_construction')::int, 64) BETWEEN 4 AND 1000
    AND coalesce((index_params ->> 'ef_construction')::int, 64) >= 2 * coalesce((index_params ->> 'm')::int, 16)
    AND coalesce((index_params ->> 'ef_search')::int, 64) BETWEEN 1 AND 1000
    AND coalesce((index_params ->> 'rerank')::int, 0) BETWEEN 0 AND 1000
    AND (coalesce(index_params ->> 'storage', 'vector') <> 'bit' OR coalesce((index_params ->> 'rerank')::int, 0) > 0));
COMMENT ON COLUMN model_versions.index_params IS
    'How this version''s embeddings are indexed and searched: storage (vector|halfvec|bit), m, ef_construction, ef_search, rerank (candidates re-ranked exactly; 0 = one stage). Empty = defaults (vector, 16, 64, 64, 0).';

CREATE OR REPLACE FUNCTION fn_ensure_embedding_index(p_model_version TEXT, p_dim INTEGER)
RETURNS TEXT
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_params  JSONB;
    v_storage TEXT;
    v_m       INTEGER;
    v_efc     INTEGER;
    v_hash    TEXT;
    v_name    TEXT;
    v_expr    TEXT;
    v_ops     TEXT;
    v_stale   RECORD;
BEGIN
    IF p_model_version IS NULL OR btrim(p_model_version) = '' THEN
        RAISE EXCEPTION 'fn_ensure_embedding_index: model version must be a non-empty string'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_dim IS NULL OR p_dim < 1 OR p_dim > 2000 THEN
        RAISE EXCEPTION 'fn_ensure_embedding_index: dimension % out of range 1..2000 (HNSW limit for vector)', p_dim
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT index_params INTO v_params FROM model_versions WHERE version_string = p_model_version;
    v_params := coalesce(v_params, '{}'::jsonb);
    v_storage := coalesce(v_params ->> 'storage', 'vector');
    v_m := coalesce((v_params ->> 'm')::int, 16);
    v_efc := coalesce((v_params ->> 'ef_construction')::int, 64);

    v_hash := substr(md5(p_model_version), 1, 16);
    v_name := format('idx_face_embeddings_hnsw_%s_d%s', v_hash, p_dim);
    IF (v_storage, v_m, v_efc) IS DISTINCT FROM ('vector'::text, 16, 64) THEN
        v_name := v_name || format('_%s_m%s_c%s', left(v_storage, 1), v_m, v_efc);
    END IF;
    v_expr := CASE v_storage
        WHEN 'halfvec' THEN format('(embedding::halfvec(%s))', p_dim)
        WHEN 'bit' THEN format('(binary_quantize(embedding::vector(%s))::bit(%s))', p_dim, p_dim)
        ELSE format('(embedding::vector(%s))', p_dim) END;
    v_ops := CASE v_storage WHEN 'halfvec' THEN 'halfvec_cosine_ops' WHEN 'bit' THEN 'bit_hamming_ops'
        ELSE 'vector_cosine_ops' END;

    -- Serialise concurrent registrations of the same version.
    PERFORM pg_advisory_xact_lock(hashtext('vigil.embedding_index'), hashtext(p_model_version));

    -- Drop indexes of the same version built for another dimension or other parameters.
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
        'CREATE INDEX IF NOT EXISTS %I ON face_embeddings USING hnsw (%s %s) '
        'WITH (m = %s, ef_construction = %s) WHERE model_version = %L',
        v_name, v_expr, v_ops, v_m, v_efc, p_model_version);

    EXECUTE format('COMMENT ON INDEX %I IS %L', v_name,
        format('HNSW index (%s, m %s, ef_construction %s) for face_embeddings of model version %s, %s dimensions',
               v_storage, v_m, v_efc, p_model_version, p_dim));

    RETURN v_name;
END;
$$;

COMMENT ON FUNCTION fn_ensure_embedding_index(TEXT, INTEGER) IS
    'Idempotently create the partial HNSW index of a model version as its index_params say (storage vector|halfvec|bit, m, ef_construction) WHERE model_version = version; returns the index name. Called by the model_versions trigger.';

DROP TRIGGER IF EXISTS trg_model_versions_embedding_index ON model_versions;
CREATE TRIGGER trg_model_versions_embedding_index
    AFTER INSERT OR UPDATE OF version_string, embedding_dim, index_params ON model_versions
    FOR EACH ROW
    EXECUTE FUNCTION fn_model_versions_embedding_index();
