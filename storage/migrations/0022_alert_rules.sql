-- 0022_alert_rules.sql
-- Alert rules, alerts and analytics configurations as the API needs them (rule.proto,
-- alert.proto): the rule conditions the seed lacks (watchlist, activity type), a cooldown,
-- notification channels per rule, the trigger of each alert (rule, deciding clause, track,
-- evidence), alerts raised by suspicious activities, a status history (who, when, from, to,
-- note), the cooldown guard, and per-camera analytics configurations.
--
-- Deviations from the seed (control/rules/SCHEMA_NOTES.md): alert_rules.severity is nullable
-- (NULL = from the person's status, the branch the seed's fn_generate_alert_from_event has but
-- could never reach); the default schedule ends at 24:00 instead of 23:59 (end is exclusive);
-- alerts.event_id is nullable (an alert raised by a suspicious activity has no event).

-- =============================================================================
-- TYPE: rule_clause_enum (AlertTrigger.clause)
-- =============================================================================

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'rule_clause_enum' AND n.nspname = current_schema()) THEN
        -- most specific first: the order in which a rule's deciding clause is chosen
        CREATE TYPE rule_clause_enum AS ENUM (
            'person', 'watchlist', 'person_role', 'zone', 'activity_type', 'event_type', 'camera', 'any');
    END IF;
END $$;

-- =============================================================================
-- TABLE: alert_rules (new conditions, cooldown, severity default)
-- =============================================================================

ALTER TABLE alert_rules ADD COLUMN IF NOT EXISTS watchlist_id UUID;          -- NULL = no watchlist condition
ALTER TABLE alert_rules ADD COLUMN IF NOT EXISTS activity_type activity_type_enum;  -- NULL = detection events
ALTER TABLE alert_rules ADD COLUMN IF NOT EXISTS cooldown INTERVAL NOT NULL DEFAULT INTERVAL '60 seconds';

-- NULL severity: blacklisted person critical, vip medium, anybody else low (seed section 15)
ALTER TABLE alert_rules ALTER COLUMN severity DROP NOT NULL;
ALTER TABLE alert_rules ALTER COLUMN severity DROP DEFAULT;

-- End times are exclusive: the seed's 23:59 left the last minute of every day unarmed.
ALTER TABLE alert_rules ALTER COLUMN schedule
    SET DEFAULT '{"days": [0,1,2,3,4,5,6], "start_time": "00:00", "end_time": "24:00"}';
UPDATE alert_rules SET schedule = '{"days": [0,1,2,3,4,5,6], "start_time": "00:00", "end_time": "24:00"}'
    WHERE schedule = '{"days": [0,1,2,3,4,5,6], "start_time": "00:00", "end_time": "23:59"}';

-- Deleting a watchlist a rule names is refused (NO ACTION): SET NULL would widen the rule to
-- everybody, CASCADE would drop it silently.
ALTER TABLE alert_rules DROP CONSTRAINT IF EXISTS fk_alert_rules_watchlist;
ALTER TABLE alert_rules ADD CONSTRAINT fk_alert_rules_watchlist
    FOREIGN KEY (watchlist_id) REFERENCES watchlists (id) ON UPDATE CASCADE;
ALTER TABLE alert_rules DROP CONSTRAINT IF EXISTS chk_alert_rules_cooldown;
ALTER TABLE alert_rules ADD CONSTRAINT chk_alert_rules_cooldown
    CHECK (cooldown >= INTERVAL '0' AND cooldown <= INTERVAL '24 hours');
-- A rule matches detection events or suspicious activities of one type, never both.
ALTER TABLE alert_rules DROP CONSTRAINT IF EXISTS chk_alert_rules_source;
ALTER TABLE alert_rules ADD CONSTRAINT chk_alert_rules_source
    CHECK (activity_type IS NULL OR event_type IS NULL);

CREATE INDEX IF NOT EXISTS idx_alert_rules_watchlist_id ON alert_rules (watchlist_id) WHERE watchlist_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_alert_rules_zone_id ON alert_rules (zone_id) WHERE zone_id IS NOT NULL;

COMMENT ON COLUMN alert_rules.severity IS
    'Severity of the alerts raised; NULL = from the person''s status (blacklisted critical, vip medium, else low)';
COMMENT ON COLUMN alert_rules.cooldown IS
    'Minimum time between two alerts of the rule for the same camera and subject (person, else cluster, else track)';
COMMENT ON COLUMN alert_rules.activity_type IS 'When set, the rule matches suspicious activities of this type instead of events';

-- =============================================================================
-- TABLE: alert_rule_channels (notification channels of a rule)
-- =============================================================================

-- A join table rather than a uuid[]: deleting a channel removes it from every rule by itself.
CREATE TABLE IF NOT EXISTS alert_rule_channels (
    rule_id     UUID NOT NULL,
    channel_id  UUID NOT NULL,
    position    SMALLINT NOT NULL,              -- order in which the rule lists its channels

    PRIMARY KEY (rule_id, channel_id),
    CONSTRAINT fk_rule_channels_rule
        FOREIGN KEY (rule_id) REFERENCES alert_rules (id) ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT fk_rule_channels_channel
        FOREIGN KEY (channel_id) REFERENCES notification_channels (id) ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE INDEX IF NOT EXISTS idx_rule_channels_channel_id ON alert_rule_channels (channel_id);

COMMENT ON TABLE alert_rule_channels IS 'Notification channels an alert rule notifies, in order';

-- =============================================================================
-- TABLE: alerts (trigger, suspicious activity)
-- =============================================================================

ALTER TABLE alerts ALTER COLUMN event_id DROP NOT NULL;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS suspicious_activity_id UUID;  -- no FK: partitioned target
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS trigger_rule_id UUID;         -- kept when the rule is deleted
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS trigger_clause rule_clause_enum;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS track_id VARCHAR(128);
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS trigger_evidence JSONB;
-- Format: {"rule_name": "...", "event_type": "person_recognized", "activity_type": null,
--          "zone_id": "uuid", "confidence": 0.91, "similarity": 0.91, "frame_number": 4711,
--          "capture_time": "2026-03-01T22:15:03+00:00"}

ALTER TABLE alerts DROP CONSTRAINT IF EXISTS chk_alerts_source;
ALTER TABLE alerts ADD CONSTRAINT chk_alerts_source
    CHECK (event_id IS NOT NULL OR suspicious_activity_id IS NOT NULL);
ALTER TABLE alerts DROP CONSTRAINT IF EXISTS chk_alerts_trigger;
ALTER TABLE alerts ADD CONSTRAINT chk_alerts_trigger
    CHECK ((trigger_rule_id IS NULL) = (trigger_clause IS NULL));

CREATE INDEX IF NOT EXISTS idx_alerts_trigger_rule_id ON alerts (trigger_rule_id) WHERE trigger_rule_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_alerts_suspicious_activity_id
    ON alerts (suspicious_activity_id) WHERE suspicious_activity_id IS NOT NULL;

COMMENT ON COLUMN alerts.suspicious_activity_id IS
    'suspicious_activity_events.id of the triggering activity (not FK-enforced: partitioned target)';
COMMENT ON COLUMN alerts.trigger_clause IS 'The deciding (most specific) condition of the rule that fired';
COMMENT ON COLUMN alerts.track_id IS 'Track that satisfied the rule (IngestService TrackUpdate.track_id)';
COMMENT ON COLUMN alerts.trigger_evidence IS 'What the rule was compared with: rule name, types, zone, confidence, frame, capture time';
COMMENT ON COLUMN alerts.resolved_by IS 'User who closed the alert: resolved it, or ignored it (status tells which)';

-- =============================================================================
-- TABLE: alert_status_changes (history of each alert)
-- =============================================================================

CREATE TABLE IF NOT EXISTS alert_status_changes (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- orders changes within one transaction
    alert_id    UUID NOT NULL,
    from_status alert_status_enum NOT NULL,
    to_status   alert_status_enum NOT NULL,
    actor_id    UUID,                           -- user; NULL for the system or a user-less API key
    api_key_id  UUID,                           -- the API key that acted, if any
    note        TEXT,
    changed_at  TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    CONSTRAINT fk_alert_changes_alert
        FOREIGN KEY (alert_id) REFERENCES alerts (id) ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT fk_alert_changes_actor
        FOREIGN KEY (actor_id) REFERENCES users (id) ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT fk_alert_changes_api_key
        FOREIGN KEY (api_key_id) REFERENCES api_keys (id) ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT chk_alert_changes_note CHECK (note IS NULL OR char_length(note) <= 2000)
);

CREATE INDEX IF NOT EXISTS idx_alert_changes_alert_id ON alert_status_changes (alert_id, id);

COMMENT ON TABLE alert_status_changes IS 'Every status change of an alert: from, to, who, when and the note given';

-- Visible exactly where the alert is (the subquery on alerts applies its site isolation).
ALTER TABLE alert_status_changes ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_status_changes FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS alert_changes_site_isolation ON alert_status_changes;
CREATE POLICY alert_changes_site_isolation ON alert_status_changes
    FOR ALL
    TO PUBLIC
    USING (alert_id IN (SELECT id FROM alerts));

-- =============================================================================
-- TABLE: alert_cooldowns (the cooldown guard)
-- =============================================================================

-- One row per rule, camera and subject ("person:<uuid>", "cluster:<uuid>" or "track:<id>"): the
-- capture time of the rule's last alert about it. A writer claims it with INSERT ... ON CONFLICT
-- DO UPDATE ... WHERE last_alert_at + <the rule's cooldown> <= <capture time>; a concurrent
-- writer of the same key waits on the row until the first commits and then sees the cooldown
-- running, so one firing raises one alert however many replicas see it. The rule's current
-- cooldown applies, so changing it takes effect at once.
CREATE TABLE IF NOT EXISTS alert_cooldowns (
    rule_id         UUID NOT NULL,
    camera_id       UUID NOT NULL,
    subject         VARCHAR(160) NOT NULL,
    last_alert_at   TIMESTAMPTZ NOT NULL,

    PRIMARY KEY (rule_id, camera_id, subject),
    CONSTRAINT fk_alert_cooldowns_rule
        FOREIGN KEY (rule_id) REFERENCES alert_rules (id) ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT fk_alert_cooldowns_camera
        FOREIGN KEY (camera_id) REFERENCES cameras (id) ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE INDEX IF NOT EXISTS idx_alert_cooldowns_last_alert_at ON alert_cooldowns (last_alert_at);

COMMENT ON TABLE alert_cooldowns IS 'Last alert of each rule per camera and subject (capture time), for cooldowns; ended ones may be pruned';

-- =============================================================================
-- TABLE: analytics_configs (suspicious-activity analytics per camera or zone)
-- =============================================================================

CREATE TABLE IF NOT EXISTS analytics_configs (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            VARCHAR(200) NOT NULL,
    camera_id       UUID NOT NULL,
    zone_id         UUID,                       -- NULL = the whole frame
    activity_type   activity_type_enum NOT NULL,
    severity        severity_enum NOT NULL DEFAULT 'medium',
    parameters      JSONB NOT NULL DEFAULT '{}',
    -- Format by activity type (durations in seconds; unset keys fall back to the zone's
    -- thresholds, then to the server defaults):
    -- loitering, dwell_time: {"min_duration": 120}
    -- crowding:              {"min_persons": 5, "min_duration": 5}
    -- running:               {"min_speed": 1.5, "min_duration": 1}
    -- repeated_entry:        {"min_entries": 3, "window": 3600}
    -- after_hours:           {"allowed_hours": {"days": [1,2,3,4,5], "start_time": "08:00", "end_time": "18:00"}}
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_by      UUID,                       -- NULL when a user-less API key created it
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    CONSTRAINT fk_analytics_configs_camera
        FOREIGN KEY (camera_id) REFERENCES cameras (id) ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT fk_analytics_configs_zone
        FOREIGN KEY (zone_id) REFERENCES camera_zones (id) ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT fk_analytics_configs_creator
        FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL ON UPDATE CASCADE,
    CONSTRAINT chk_analytics_configs_parameters CHECK (jsonb_typeof(parameters) = 'object')
);

CREATE INDEX IF NOT EXISTS idx_analytics_configs_camera_name ON analytics_configs (camera_id, name, id);
CREATE INDEX IF NOT EXISTS idx_analytics_configs_zone_id ON analytics_configs (zone_id) WHERE zone_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_analytics_configs_active ON analytics_configs (camera_id) WHERE is_active;

COMMENT ON TABLE analytics_configs IS 'Suspicious-activity analytics configured per camera or zone (RuleService AnalyticsConfig)';
COMMENT ON COLUMN analytics_configs.parameters IS 'Parameters of the activity type; a JSON object, durations in seconds';

DROP TRIGGER IF EXISTS trg_analytics_configs_updated_at ON analytics_configs;
CREATE TRIGGER trg_analytics_configs_updated_at
    BEFORE UPDATE ON analytics_configs
    FOR EACH ROW
    EXECUTE FUNCTION fn_update_updated_at();

DROP TRIGGER IF EXISTS trg_audit_analytics_configs ON analytics_configs;
CREATE TRIGGER trg_audit_analytics_configs
    AFTER INSERT OR UPDATE OR DELETE ON analytics_configs
    FOR EACH ROW EXECUTE FUNCTION fn_audit_log('analytics_config');

-- vigil_app's DML comes from 0016's default privileges when the same role runs this file;
-- granted explicitly too, since a DBA may apply migrations as another role.
GRANT SELECT, INSERT, UPDATE, DELETE ON alert_rule_channels, alert_status_changes, alert_cooldowns,
    analytics_configs TO vigil_app;
GRANT USAGE ON SEQUENCE alert_status_changes_id_seq TO vigil_app;
