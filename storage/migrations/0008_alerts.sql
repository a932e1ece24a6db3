-- 0008_alerts.sql
-- Seed section 7: alert_rules, alerts (setup order step 9).
-- alerts.event_id has no FK: events is partitioned with PRIMARY KEY (id, timestamp).

-- =============================================================================
-- TABLE: alert_rules
-- =============================================================================

CREATE TABLE IF NOT EXISTS alert_rules (
    id                      UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name                    VARCHAR(200) NOT NULL,
    camera_id               UUID,               -- NULL = all cameras
    person_id               UUID,               -- NULL = any person
    person_role             VARCHAR(100),       -- Match person role field
    zone_id                 UUID,               -- NULL = any zone
    event_type              event_type_enum,    -- NULL = any event type
    schedule                JSONB NOT NULL DEFAULT '{"days": [0,1,2,3,4,5,6], "start_time": "00:00", "end_time": "23:59"}',
    -- Format: {"days": [1,2,3,4,5], "start_time": "18:00", "end_time": "06:00", "timezone": "Asia/Singapore"}
    confidence_threshold    DECIMAL(4,3) NOT NULL DEFAULT 0.75,
    severity                severity_enum NOT NULL DEFAULT 'medium',
    is_active               BOOLEAN NOT NULL DEFAULT TRUE,
    quiet_hours             JSONB,              -- {"start": "12:00", "end": "13:00", "enabled": true}
    created_by              UUID NOT NULL,
    created_at              TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_alert_rules_camera
        FOREIGN KEY (camera_id)
        REFERENCES cameras (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT fk_alert_rules_person
        FOREIGN KEY (person_id)
        REFERENCES persons (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT fk_alert_rules_zone
        FOREIGN KEY (zone_id)
        REFERENCES camera_zones (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT fk_alert_rules_creator
        FOREIGN KEY (created_by)
        REFERENCES users (id)
        ON DELETE RESTRICT
        ON UPDATE CASCADE,
    CONSTRAINT chk_alert_rules_confidence CHECK (confidence_threshold BETWEEN 0.0 AND 1.0)
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_alert_rules_camera_id ON alert_rules (camera_id) WHERE camera_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_alert_rules_is_active ON alert_rules (is_active) WHERE is_active = TRUE;
CREATE INDEX IF NOT EXISTS idx_alert_rules_person_id ON alert_rules (person_id) WHERE person_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_alert_rules_severity ON alert_rules (severity);

-- Comments
COMMENT ON TABLE alert_rules IS 'Configurable conditions that trigger alerts';
COMMENT ON COLUMN alert_rules.schedule IS 'Active schedule: days (0=Sunday), start/end times, timezone';
COMMENT ON COLUMN alert_rules.quiet_hours IS 'Suppression window to prevent alert fatigue';

-- Trigger: auto-update updated_at
DROP TRIGGER IF EXISTS trg_alert_rules_updated_at ON alert_rules;
CREATE TRIGGER trg_alert_rules_updated_at
    BEFORE UPDATE ON alert_rules
    FOR EACH ROW
    EXECUTE FUNCTION fn_update_updated_at();

-- =============================================================================
-- TABLE: alerts
-- =============================================================================

CREATE TABLE IF NOT EXISTS alerts (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id        UUID NOT NULL,
    alert_rule_id   UUID,
    person_id       UUID,
    camera_id       UUID NOT NULL,
    alert_type      VARCHAR(50) NOT NULL,       -- Human-readable type: "Person_Detected", "Zone_Intrusion"
    severity        severity_enum NOT NULL,
    message         TEXT NOT NULL,
    status          alert_status_enum NOT NULL DEFAULT 'pending',
    sent_at         TIMESTAMPTZ,               -- When notifications were dispatched
    acknowledged_by UUID,                       -- User who acknowledged
    acknowledged_at TIMESTAMPTZ,
    resolved_by     UUID,                       -- User who resolved
    resolved_at     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_alerts_camera
        FOREIGN KEY (camera_id)
        REFERENCES cameras (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT fk_alerts_rule
        FOREIGN KEY (alert_rule_id)
        REFERENCES alert_rules (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT fk_alerts_person
        FOREIGN KEY (person_id)
        REFERENCES persons (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT fk_alerts_ack_by
        FOREIGN KEY (acknowledged_by)
        REFERENCES users (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT fk_alerts_resolved_by
        FOREIGN KEY (resolved_by)
        REFERENCES users (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_alerts_status ON alerts (status);
CREATE INDEX IF NOT EXISTS idx_alerts_camera_id ON alerts (camera_id);
CREATE INDEX IF NOT EXISTS idx_alerts_created_at ON alerts (created_at DESC);
CREATE INDEX IF NOT EXISTS idx_alerts_person_id ON alerts (person_id) WHERE person_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_alerts_rule_id ON alerts (alert_rule_id) WHERE alert_rule_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_alerts_severity ON alerts (severity);
CREATE INDEX IF NOT EXISTS idx_alerts_status_created ON alerts (status, created_at DESC);

-- Comments
COMMENT ON TABLE alerts IS 'Alert records with full lifecycle tracking';
COMMENT ON COLUMN alerts.event_id IS
    'events.id of the triggering event, or suspicious_activity_events.id for a suspicious-activity alert without a base event (alert_type suspicious_activity_*). Not FK-enforced (partitioned targets).';
