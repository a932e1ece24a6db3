-- 0013_review_audit.sql
-- Seed section 12: review_actions, audit_logs (monthly partitioned) (setup order step 14).
-- audit_logs: PRIMARY KEY (id, timestamp) (partition key included), id DEFAULT
-- gen_random_uuid(), timestamp DEFAULT NOW(), DEFAULT partition audit_logs_default,
-- current + next month created here. review_actions.event_id is not FK-enforced
-- (events is partitioned).

-- =============================================================================
-- TABLE: review_actions
-- =============================================================================

CREATE TABLE IF NOT EXISTS review_actions (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    event_id        UUID NOT NULL,
    reviewer_id     UUID NOT NULL,
    action          review_action_enum NOT NULL,
    from_person_id  UUID,                       -- Original person assignment
    to_person_id    UUID,                       -- Corrected person assignment (for correct_name, merge)
    notes           TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_review_reviewer
        FOREIGN KEY (reviewer_id)
        REFERENCES users (id)
        ON DELETE RESTRICT
        ON UPDATE CASCADE,
    CONSTRAINT fk_review_from_person
        FOREIGN KEY (from_person_id)
        REFERENCES persons (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT fk_review_to_person
        FOREIGN KEY (to_person_id)
        REFERENCES persons (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_review_actions_event_id ON review_actions (event_id);
CREATE INDEX IF NOT EXISTS idx_review_actions_reviewer ON review_actions (reviewer_id);
CREATE INDEX IF NOT EXISTS idx_review_actions_created ON review_actions (created_at DESC);

-- Comments
COMMENT ON TABLE review_actions IS 'Operator review decisions on detection events';

-- =============================================================================
-- TABLE: audit_logs (MONTHLY PARTITIONED BY timestamp)
-- =============================================================================

CREATE TABLE IF NOT EXISTS audit_logs (
    id              UUID NOT NULL DEFAULT gen_random_uuid(),
    user_id         UUID,                       -- NULL for system/service actions
    action          VARCHAR(100) NOT NULL,      -- login, person_create, alert_acknowledge, etc.
    resource_type   VARCHAR(50) NOT NULL,       -- person, camera, alert, event, system
    resource_id     UUID,                       -- UUID of affected resource
    details         JSONB NOT NULL DEFAULT '{}',
    -- Format varies by action:
    -- login: {"ip": "192.168.1.100", "mfa_used": true, "success": true}
    -- person_create: {"name": "John Doe", "status": "known"}
    -- alert_acknowledge: {"alert_id": "uuid", "previous_status": "pending"}
    ip_address      INET,
    user_agent      TEXT,
    timestamp       TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Partition key must be part of the primary key
    PRIMARY KEY (id, timestamp),

    -- Constraints
    CONSTRAINT fk_audit_user
        FOREIGN KEY (user_id)
        REFERENCES users (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE
) PARTITION BY RANGE (timestamp);

CREATE TABLE IF NOT EXISTS audit_logs_default PARTITION OF audit_logs DEFAULT;

-- Indexes
CREATE INDEX IF NOT EXISTS idx_audit_logs_user_id ON audit_logs (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_audit_logs_timestamp ON audit_logs (timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_audit_logs_resource_type ON audit_logs (resource_type);
CREATE INDEX IF NOT EXISTS idx_audit_logs_action ON audit_logs (action);
CREATE INDEX IF NOT EXISTS idx_audit_logs_ip ON audit_logs (ip_address);

-- Comments
COMMENT ON TABLE audit_logs IS 'Comprehensive audit trail - partitioned monthly for compliance';
COMMENT ON COLUMN audit_logs.details IS
    'Action context. For trigger-written rows: {"old": row, "new": row, "changed_fields": {...}} with secret columns replaced by "[REDACTED]" and URL credentials masked (fn_audit_redact)';

-- Current and next month (UTC)
DO $$
DECLARE
    v_month DATE;
BEGIN
    FOR i IN 0 .. 1 LOOP
        v_month := (date_trunc('month', NOW() AT TIME ZONE 'UTC') + make_interval(months => i))::DATE;
        PERFORM fn_create_monthly_partition('audit_logs',
                                            EXTRACT(YEAR FROM v_month)::INTEGER,
                                            EXTRACT(MONTH FROM v_month)::INTEGER);
    END LOOP;
END $$;
