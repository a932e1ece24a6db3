-- 0001_extensions_and_enums.sql
-- Seed: surveillance-platform-schema.md section 1 (Extension Setup) and the shared
-- trigger function fn_update_updated_at (section 15), which must exist before any
-- table that binds a trg_*_updated_at trigger to it.
--
-- Applied by `vigil db migrate` inside ONE transaction; safe to re-apply.
-- Deviations from the seed are listed in storage/SCHEMA.md.

-- =============================================================================
-- EXTENSIONS
-- =============================================================================
-- Only pgvector is used. Its extension name is `vector` (the seed's "pgvector" is
-- wrong). uuid-ossp, pgcrypto and pg_partman are NOT used: gen_random_uuid() is
-- built into PostgreSQL 13+, secrets are encrypted by the application
-- (AES-256-GCM) and partitions are maintained by fn_maintain_partitions().
-- pgvector is not a trusted extension: the first run needs a superuser (the
-- embedded default runs as one); in production a DBA may pre-create it.
CREATE EXTENSION IF NOT EXISTS vector;

-- Verify pgvector is present and recent enough (HNSW needs 0.5.0+).
DO $$
DECLARE
    v_version TEXT;
BEGIN
    SELECT extversion INTO v_version FROM pg_extension WHERE extname = 'vector';
    IF v_version IS NULL THEN
        RAISE EXCEPTION 'pgvector extension is required. Install with: CREATE EXTENSION vector;';
    END IF;
    IF string_to_array(regexp_replace(v_version, '[^0-9.].*$', ''), '.')::INT[] < ARRAY[0, 5, 0] THEN
        RAISE EXCEPTION 'pgvector % found; 0.5.0 or newer is required for HNSW indexes', v_version;
    END IF;
END $$;

-- =============================================================================
-- CUSTOM TYPES & ENUMS (each guarded so that re-applying is harmless)
-- =============================================================================

-- User roles enum
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'user_role_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE user_role_enum AS ENUM ('super_admin', 'admin', 'operator', 'viewer', 'api_client');
    END IF;
END $$;

-- Device status enum
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'device_status_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE device_status_enum AS ENUM ('online', 'offline', 'degraded', 'unknown', 'maintenance');
    END IF;
END $$;

-- Event type enum
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'event_type_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE event_type_enum AS ENUM (
            'human_detected',
            'face_detected',
            'person_recognized',
            'motion_detected',
            'object_detected'
        );
    END IF;
END $$;

-- Activity type enum for suspicious activity
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'activity_type_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE activity_type_enum AS ENUM (
            'intrusion',
            'loitering',
            'running',
            'crowding',
            'fall',
            'abandoned_object',
            'after_hours',
            'zone_breach',
            'repeated_entry',
            'dwell_time'
        );
    END IF;
END $$;

-- Severity levels
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'severity_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE severity_enum AS ENUM ('low', 'medium', 'high', 'critical');
    END IF;
END $$;

-- Alert status enum
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'alert_status_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE alert_status_enum AS ENUM ('pending', 'sent', 'acknowledged', 'resolved', 'ignored');
    END IF;
END $$;

-- Person status enum
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'person_status_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE person_status_enum AS ENUM ('known', 'unknown', 'blacklisted', 'vip');
    END IF;
END $$;

-- Person label enum
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'person_label_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE person_label_enum AS ENUM (
            'employee',
            'visitor',
            'vendor',
            'driver',
            'staff',
            'contractor',
            'blacklisted',
            'vip',
            'custom'
        );
    END IF;
END $$;

-- Zone type enum
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'zone_type_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE zone_type_enum AS ENUM ('restricted', 'interest', 'entry', 'exit');
    END IF;
END $$;

-- Watchlist type enum
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'watchlist_type_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE watchlist_type_enum AS ENUM ('vip', 'blacklist', 'suspect', 'custom');
    END IF;
END $$;

-- Channel type enum for notifications
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'channel_type_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE channel_type_enum AS ENUM ('telegram', 'whatsapp', 'email', 'webhook');
    END IF;
END $$;

-- Media file type enum
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'media_file_type_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE media_file_type_enum AS ENUM ('image', 'video');
    END IF;
END $$;

-- Training status enum
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'training_status_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE training_status_enum AS ENUM ('building', 'ready', 'training', 'archived');
    END IF;
END $$;

-- Training job status enum
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'training_job_status_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE training_job_status_enum AS ENUM ('queued', 'running', 'completed', 'failed', 'rollback');
    END IF;
END $$;

-- Review action enum
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'review_action_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE review_action_enum AS ENUM ('confirm', 'reject', 'correct_name', 'merge', 'delete');
    END IF;
END $$;

-- Device connectivity event enum
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'connectivity_event_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE connectivity_event_enum AS ENUM ('connected', 'disconnected', 'reconnect_failed');
    END IF;
END $$;

-- Cluster status enum
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'cluster_status_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE cluster_status_enum AS ENUM ('active', 'merged', 'reviewed');
    END IF;
END $$;

-- =============================================================================
-- FUNCTION: fn_update_updated_at  (seed section 15; created first because every
-- trg_*_updated_at trigger in later migrations binds to it)
-- =============================================================================

CREATE OR REPLACE FUNCTION fn_update_updated_at()
RETURNS TRIGGER AS $$
BEGIN
    NEW.updated_at = NOW();
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

COMMENT ON FUNCTION fn_update_updated_at() IS 'Trigger function to auto-update updated_at timestamp';
