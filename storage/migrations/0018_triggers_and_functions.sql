-- 0018_triggers_and_functions.sql
-- Seed section 15 (setup order step 18): audit logging, SQL alert generation, media
-- retention cleanup. (fn_update_updated_at is in 0001, fn_create_monthly_partition
-- in 0006, fn_ensure_embedding_index in 0005: they are needed earlier.)
--
-- Deviations (storage/SCHEMA.md):
--   * audit redaction: the seed's `v_details - '{new.password_hash,...}'::text[]`
--     removes top-level keys named "new.password_hash" (there are none), so nothing
--     was redacted. fn_audit_redact() now replaces secret values inside the 'old',
--     'new' and 'changed_fields' objects with "[REDACTED]" and masks credentials in
--     URLs; changed_fields is computed before redaction so a password change still
--     shows up (as "[REDACTED]").
--   * fn_audit_log uses gen_random_uuid(), is SECURITY DEFINER with a fixed
--     search_path, and writes to the partitioned audit_logs.
--   * SQL alert triggers are gated: they return immediately when the setting
--     vigil.sql_alert_triggers is 'off' (the control plane evaluates rules itself
--     and sets it off for its sessions; unset = seed behaviour).
--   * the suspicious-activity trigger is BEFORE INSERT (the seed's AFTER trigger set
--     NEW.alert_sent = TRUE, which has no effect after the row is written), and it
--     uses COALESCE(NEW.event_id, NEW.id) for alerts.event_id (NOT NULL), which the
--     seed left NULL for suspicious events without a base event.
--   * fn_cleanup_expired_media deletes video_clips first, then media_files.

-- =============================================================================
-- FUNCTION: fn_audit_redact
-- Recursively replaces secret values in a JSONB document with "[REDACTED]":
-- object keys listed below or ending in "_encrypted" (at any depth), and the
-- user:password@ part of URL strings (e.g. rtsp://user:pass@host/...).
-- =============================================================================

CREATE OR REPLACE FUNCTION fn_audit_redact(p_doc JSONB)
RETURNS JSONB
LANGUAGE plpgsql
IMMUTABLE
SET search_path = public, pg_temp
AS $$
DECLARE
    c_secret_keys CONSTANT TEXT[] := ARRAY[
        'password_hash', 'password_encrypted', 'username_encrypted', 'mfa_secret',
        'bot_token_encrypted', 'api_key_encrypted', 'key_hash',
        'password', 'passwd', 'secret', 'private_key', 'preshared_key',
        'api_key', 'bot_token', 'access_token', 'refresh_token'
    ];
BEGIN
    IF p_doc IS NULL THEN
        RETURN NULL;
    END IF;
    CASE jsonb_typeof(p_doc)
        WHEN 'object' THEN
            RETURN COALESCE(
                (SELECT jsonb_object_agg(
                            e.key,
                            CASE
                                WHEN (lower(e.key) = ANY (c_secret_keys) OR lower(e.key) LIKE '%\_encrypted')
                                     AND jsonb_typeof(e.value) <> 'null'
                                    THEN to_jsonb('[REDACTED]'::TEXT)
                                ELSE fn_audit_redact(e.value)
                            END)
                   FROM jsonb_each(p_doc) AS e),
                '{}'::JSONB);
        WHEN 'array' THEN
            RETURN COALESCE(
                (SELECT jsonb_agg(fn_audit_redact(a.value) ORDER BY a.ord)
                   FROM jsonb_array_elements(p_doc) WITH ORDINALITY AS a(value, ord)),
                '[]'::JSONB);
        WHEN 'string' THEN
            RETURN to_jsonb(regexp_replace(p_doc #>> '{}',
                                           '([A-Za-z][A-Za-z0-9+.-]*://)[^/@[:space:]]+@',
                                           '\1[REDACTED]@', 'g'));
        ELSE
            RETURN p_doc;
    END CASE;
END;
$$;

COMMENT ON FUNCTION fn_audit_redact(JSONB) IS
    'Replace secret values (password/secret/key/token columns, *_encrypted, URL credentials) with "[REDACTED]" at any depth of a JSONB document';

-- =============================================================================
-- FUNCTION: fn_audit_log
-- Generic audit logging trigger for table changes
-- Usage: CREATE TRIGGER ... AFTER INSERT OR UPDATE OR DELETE ON table
--        FOR EACH ROW EXECUTE FUNCTION fn_audit_log('resource_type');
-- =============================================================================

CREATE OR REPLACE FUNCTION fn_audit_log()
RETURNS TRIGGER
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_user_id UUID;
    v_action VARCHAR(100);
    v_resource_type VARCHAR(50);
    v_resource_id UUID;
    v_details JSONB;
    v_ip_address INET;
    v_old JSONB;
    v_new JSONB;
BEGIN
    -- Get current user from session variable (set by application)
    v_user_id := NULLIF(current_setting('app.current_user_id', TRUE), '')::UUID;
    v_ip_address := NULLIF(current_setting('app.client_ip', TRUE), '')::INET;

    v_resource_type := TG_ARGV[0];

    IF TG_OP = 'INSERT' THEN
        v_action := TG_ARGV[0] || '_create';
        v_resource_id := NEW.id;
        v_details := jsonb_build_object('new', fn_audit_redact(to_jsonb(NEW)));
    ELSIF TG_OP = 'UPDATE' THEN
        v_action := TG_ARGV[0] || '_update';
        v_resource_id := NEW.id;
        v_old := to_jsonb(OLD);
        v_new := to_jsonb(NEW);
        -- changed_fields is computed on the clear images, then redacted like the rest
        v_details := jsonb_build_object(
            'old', fn_audit_redact(v_old),
            'new', fn_audit_redact(v_new),
            'changed_fields', fn_audit_redact((
                SELECT jsonb_object_agg(n.key, n.value)
                FROM jsonb_each(v_new) AS n
                WHERE v_old -> n.key IS DISTINCT FROM n.value
            ))
        );
    ELSIF TG_OP = 'DELETE' THEN
        v_action := TG_ARGV[0] || '_delete';
        v_resource_id := OLD.id;
        v_details := jsonb_build_object('old', fn_audit_redact(to_jsonb(OLD)));
    END IF;

    INSERT INTO audit_logs (id, user_id, action, resource_type, resource_id, details, ip_address, timestamp)
    VALUES (gen_random_uuid(), v_user_id, v_action, v_resource_type, v_resource_id, v_details, v_ip_address, NOW());

    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    ELSE
        RETURN NEW;
    END IF;
END;
$$;

COMMENT ON FUNCTION fn_audit_log() IS 'Generic audit trigger - pass resource type as TG_ARGV[0]; secrets are redacted (fn_audit_redact)';

-- Apply audit triggers to key tables
DROP TRIGGER IF EXISTS trg_audit_persons ON persons;
CREATE TRIGGER trg_audit_persons
    AFTER INSERT OR UPDATE OR DELETE ON persons
    FOR EACH ROW EXECUTE FUNCTION fn_audit_log('person');

DROP TRIGGER IF EXISTS trg_audit_cameras ON cameras;
CREATE TRIGGER trg_audit_cameras
    AFTER INSERT OR UPDATE OR DELETE ON cameras
    FOR EACH ROW EXECUTE FUNCTION fn_audit_log('camera');

DROP TRIGGER IF EXISTS trg_audit_dvrs ON dvrs;
CREATE TRIGGER trg_audit_dvrs
    AFTER INSERT OR UPDATE OR DELETE ON dvrs
    FOR EACH ROW EXECUTE FUNCTION fn_audit_log('dvr');

DROP TRIGGER IF EXISTS trg_audit_sites ON sites;
CREATE TRIGGER trg_audit_sites
    AFTER INSERT OR UPDATE OR DELETE ON sites
    FOR EACH ROW EXECUTE FUNCTION fn_audit_log('site');

DROP TRIGGER IF EXISTS trg_audit_users ON users;
CREATE TRIGGER trg_audit_users
    AFTER INSERT OR UPDATE OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION fn_audit_log('user');

DROP TRIGGER IF EXISTS trg_audit_alerts ON alerts;
CREATE TRIGGER trg_audit_alerts
    AFTER INSERT OR UPDATE OR DELETE ON alerts
    FOR EACH ROW EXECUTE FUNCTION fn_audit_log('alert');

DROP TRIGGER IF EXISTS trg_audit_alert_rules ON alert_rules;
CREATE TRIGGER trg_audit_alert_rules
    AFTER INSERT OR UPDATE OR DELETE ON alert_rules
    FOR EACH ROW EXECUTE FUNCTION fn_audit_log('alert_rule');

DROP TRIGGER IF EXISTS trg_audit_watchlists ON watchlists;
CREATE TRIGGER trg_audit_watchlists
    AFTER INSERT OR UPDATE OR DELETE ON watchlists
    FOR EACH ROW EXECUTE FUNCTION fn_audit_log('watchlist');

-- Not in the seed: API key issue / change / revocation is security-relevant. Only the
-- listed columns fire on UPDATE, so per-request last_used_at / request_count updates
-- do not flood the audit log.
DROP TRIGGER IF EXISTS trg_audit_api_keys ON api_keys;
CREATE TRIGGER trg_audit_api_keys
    AFTER INSERT OR DELETE OR UPDATE OF role, user_id, site_id, key_hash, scopes,
        rate_limit_per_minute, is_active, expires_at, revoked_at ON api_keys
    FOR EACH ROW EXECUTE FUNCTION fn_audit_log('api_key');

-- =============================================================================
-- FUNCTION: fn_generate_alert_from_event
-- Automatically generate alerts when events match active alert rules.
-- Gated: returns at once when vigil.sql_alert_triggers = 'off' (the control plane
-- evaluates rules in the service and sets it off for its sessions).
-- =============================================================================

CREATE OR REPLACE FUNCTION fn_generate_alert_from_event()
RETURNS TRIGGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_rule RECORD;
    v_severity severity_enum;
    v_message TEXT;
    v_camera_name VARCHAR(100);
    v_person_name VARCHAR(200);
BEGIN
    IF lower(COALESCE(current_setting('vigil.sql_alert_triggers', TRUE), '')) IN ('off', 'false', '0', 'no') THEN
        RETURN NEW;
    END IF;

    -- Find matching alert rules
    FOR v_rule IN
        SELECT *
        FROM alert_rules
        WHERE is_active = TRUE
          AND (camera_id IS NULL OR camera_id = NEW.camera_id)
          AND (event_type IS NULL OR event_type = NEW.event_type)
          AND (person_id IS NULL OR person_id = NEW.person_id)
          AND confidence_threshold <= NEW.confidence
    LOOP
        -- Get camera name
        SELECT name INTO v_camera_name FROM cameras WHERE id = NEW.camera_id;

        -- Get person name if recognized
        SELECT name INTO v_person_name FROM persons WHERE id = NEW.person_id;

        -- Build alert message
        v_message := format('%s detected on camera "%s" at %s',
            COALESCE(v_person_name, 'Unknown person'),
            v_camera_name,
            NEW.timestamp::TEXT
        );

        -- Determine severity
        IF v_rule.severity IS NOT NULL THEN
            v_severity := v_rule.severity;
        ELSIF NEW.person_id IS NOT NULL THEN
            SELECT CASE status
                WHEN 'blacklisted' THEN 'critical'::severity_enum
                WHEN 'vip' THEN 'medium'::severity_enum
                ELSE 'low'::severity_enum
            END INTO v_severity FROM persons WHERE id = NEW.person_id;
        ELSE
            v_severity := 'low';
        END IF;

        -- Insert alert
        INSERT INTO alerts (event_id, alert_rule_id, person_id, camera_id,
                           alert_type, severity, message, status, created_at)
        VALUES (NEW.id, v_rule.id, NEW.person_id, NEW.camera_id,
                NEW.event_type::TEXT, v_severity, v_message, 'pending', NOW());
    END LOOP;

    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION fn_generate_alert_from_event() IS
    'Auto-generate alerts from events matching active rules; no-op when vigil.sql_alert_triggers = off';

-- Row trigger on the partitioned table (cloned to every partition, PG 13+)
DROP TRIGGER IF EXISTS trg_event_generate_alert ON events;
CREATE TRIGGER trg_event_generate_alert
    AFTER INSERT ON events
    FOR EACH ROW
    EXECUTE FUNCTION fn_generate_alert_from_event();

-- =============================================================================
-- FUNCTION: fn_generate_alert_from_suspicious_activity
-- Generate alerts for suspicious/anomalous activity detections. BEFORE INSERT so
-- that NEW.alert_sent = TRUE is really stored. Gated like the event trigger.
-- =============================================================================

CREATE OR REPLACE FUNCTION fn_generate_alert_from_suspicious_activity()
RETURNS TRIGGER
LANGUAGE plpgsql
AS $$
DECLARE
    v_camera_name VARCHAR(100);
    v_zone_name VARCHAR(100);
    v_message TEXT;
BEGIN
    IF lower(COALESCE(current_setting('vigil.sql_alert_triggers', TRUE), '')) IN ('off', 'false', '0', 'no') THEN
        RETURN NEW;
    END IF;

    SELECT name INTO v_camera_name FROM cameras WHERE id = NEW.camera_id;
    SELECT name INTO v_zone_name FROM camera_zones WHERE id = NEW.zone_id;

    v_message := format('%s detected on "%s"%s at %s. Confidence: %s%%. Severity: %s',
        NEW.activity_type::TEXT,
        v_camera_name,
        CASE WHEN v_zone_name IS NOT NULL THEN ' in zone "' || v_zone_name || '"' ELSE '' END,
        NEW.timestamp::TEXT,
        ROUND(NEW.confidence * 100, 1),
        NEW.severity::TEXT
    );

    -- alerts.event_id is NOT NULL: without a base event, point at this row's id
    INSERT INTO alerts (event_id, person_id, camera_id, alert_type, severity,
                       message, status, created_at)
    VALUES (COALESCE(NEW.event_id, NEW.id), NULL, NEW.camera_id,
            'suspicious_activity_' || NEW.activity_type::TEXT,
            NEW.severity, v_message, 'pending', NOW());

    -- Mark alert as sent in the suspicious activity record (effective: BEFORE trigger)
    NEW.alert_sent := TRUE;

    RETURN NEW;
END;
$$;

COMMENT ON FUNCTION fn_generate_alert_from_suspicious_activity() IS
    'BEFORE INSERT: auto-generate an alert for a suspicious activity event and set alert_sent; no-op when vigil.sql_alert_triggers = off';

DROP TRIGGER IF EXISTS trg_suspicious_generate_alert ON suspicious_activity_events;
CREATE TRIGGER trg_suspicious_generate_alert
    BEFORE INSERT ON suspicious_activity_events
    FOR EACH ROW
    WHEN (NEW.alert_sent = FALSE)
    EXECUTE FUNCTION fn_generate_alert_from_suspicious_activity();

-- =============================================================================
-- FUNCTION: fn_cleanup_expired_media
-- Remove rows of media past retention (+7 days grace).
-- Contract: the APPLICATION deletes the objects from object storage FIRST
--   (SELECT id, storage_path FROM media_files WHERE retention_until < NOW() - INTERVAL '7 days'),
-- THEN calls this function (daily, from the scheduler) to delete the rows. Clips are
-- deleted before their media rows (the FK video_clips -> media_files also cascades).
-- SECURITY DEFINER so the scheduler can run it as vigil_app across all sites.
-- =============================================================================

CREATE OR REPLACE FUNCTION fn_cleanup_expired_media()
RETURNS INTEGER
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = public, pg_temp
AS $$
DECLARE
    v_cutoff TIMESTAMPTZ := NOW() - INTERVAL '7 days';
    v_deleted_count INTEGER := 0;
    v_deleted_clips INTEGER := 0;
BEGIN
    DELETE FROM video_clips vc
    USING media_files mf
    WHERE vc.media_file_id = mf.id
      AND mf.retention_until < v_cutoff;
    GET DIAGNOSTICS v_deleted_clips = ROW_COUNT;

    DELETE FROM media_files
    WHERE retention_until < v_cutoff;
    GET DIAGNOSTICS v_deleted_count = ROW_COUNT;

    -- Log cleanup action
    INSERT INTO audit_logs (id, action, resource_type, resource_id, details, timestamp)
    VALUES (
        gen_random_uuid(),
        'media_cleanup',
        'system',
        NULL,
        jsonb_build_object('expired_media_deleted', v_deleted_count,
                           'video_clips_deleted', v_deleted_clips,
                           'cutoff', v_cutoff),
        NOW()
    );

    RETURN v_deleted_count;
END;
$$;

COMMENT ON FUNCTION fn_cleanup_expired_media() IS
    'Daily: delete rows of media expired for 7+ days (clips first). The application removes the objects from object storage before calling it.';

-- SECURITY DEFINER: not executable by PUBLIC; the scheduler may run it as vigil_app.
REVOKE EXECUTE ON FUNCTION fn_cleanup_expired_media() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION fn_cleanup_expired_media() TO vigil_app;
