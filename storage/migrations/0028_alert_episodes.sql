-- 0028_alert_episodes.sql
-- Incidents instead of alert storms (control/rules/writer.py): a rule with a group window keeps
-- one open alert per episode (rule, camera, zone); later matches of the episode add their track,
-- evidence and a count to it instead of raising new alerts. Explained in storage/SCHEMA.md
-- ("Alert episodes (0028)"). Not in the seeds.
-- Idempotent: every statement may run again on a migrated database.

-- =============================================================================
-- alert_rules.group_window
-- =============================================================================

-- 0 = one alert per match (the behaviour before 0028, and the default).
ALTER TABLE alert_rules ADD COLUMN IF NOT EXISTS group_window INTERVAL NOT NULL DEFAULT INTERVAL '0';
ALTER TABLE alert_rules DROP CONSTRAINT IF EXISTS chk_alert_rules_group_window;
ALTER TABLE alert_rules ADD CONSTRAINT chk_alert_rules_group_window
    CHECK (group_window >= INTERVAL '0' AND group_window <= INTERVAL '24 hours');
COMMENT ON COLUMN alert_rules.group_window IS
    'Matches of the rule on one camera and zone join the open alert while they come at most this long after the episode''s last match; 0 = one alert per match';

-- =============================================================================
-- alerts: the episode
-- =============================================================================

ALTER TABLE alerts ADD COLUMN IF NOT EXISTS group_key VARCHAR(200);      -- "<rule>/<camera>/<zone or *>"
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS episode_open BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS match_count INTEGER NOT NULL DEFAULT 1;
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS last_matched_at TIMESTAMPTZ;  -- capture time of the latest match
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS track_ids VARCHAR(128)[] NOT NULL DEFAULT '{}';

ALTER TABLE alerts DROP CONSTRAINT IF EXISTS chk_alerts_episode;
ALTER TABLE alerts ADD CONSTRAINT chk_alerts_episode
    CHECK (match_count >= 1 AND (NOT episode_open OR (group_key IS NOT NULL AND last_matched_at IS NOT NULL)));

-- At most one open episode per key, whichever replica writes it: the second writer's INSERT
-- waits for the first's commit and then joins its alert (AlertRepository.open_or_join).
CREATE UNIQUE INDEX IF NOT EXISTS uq_alerts_open_episode ON alerts (group_key) WHERE episode_open;

COMMENT ON COLUMN alerts.group_key IS 'Episode of a grouping rule: rule, camera and zone; NULL for alerts of one match';
COMMENT ON COLUMN alerts.episode_open IS
    'Later matches may still join (cleared when the alert is resolved or ignored, or lazily once the window has passed)';
COMMENT ON COLUMN alerts.match_count IS 'Matches the alert stands for: 1 + the rows of alert_matches';
COMMENT ON COLUMN alerts.last_matched_at IS 'Capture time of the episode''s latest match';
COMMENT ON COLUMN alerts.track_ids IS 'Distinct tracks of the episode''s matches, first seen first';

-- =============================================================================
-- TABLE: alert_matches (later matches of an episode, with their evidence)
-- =============================================================================

CREATE TABLE IF NOT EXISTS alert_matches (
    id                      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id                UUID NOT NULL,
    matched_at              TIMESTAMPTZ NOT NULL,   -- capture time of the match
    track_id                VARCHAR(128),
    event_id                UUID,                   -- no FK: partitioned targets
    suspicious_activity_id  UUID,
    severity                severity_enum NOT NULL,
    evidence                JSONB NOT NULL,         -- as alerts.trigger_evidence
    created_at              TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    CONSTRAINT fk_alert_matches_alert
        FOREIGN KEY (alert_id) REFERENCES alerts (id) ON DELETE CASCADE ON UPDATE CASCADE,
    CONSTRAINT chk_alert_matches_source CHECK ((event_id IS NULL) <> (suspicious_activity_id IS NULL))
);

CREATE INDEX IF NOT EXISTS idx_alert_matches_alert_id ON alert_matches (alert_id, id);
CREATE INDEX IF NOT EXISTS idx_alert_matches_activity
    ON alert_matches (suspicious_activity_id) WHERE suspicious_activity_id IS NOT NULL;

COMMENT ON TABLE alert_matches IS 'Matches that joined an open alert after the one that raised it';

-- Visible exactly where the alert is (the subquery on alerts applies its site isolation).
ALTER TABLE alert_matches ENABLE ROW LEVEL SECURITY;
ALTER TABLE alert_matches FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS alert_matches_site_isolation ON alert_matches;
CREATE POLICY alert_matches_site_isolation ON alert_matches
    FOR ALL
    TO PUBLIC
    USING (alert_id IN (SELECT id FROM alerts));

-- =============================================================================
-- notification_deliveries.round: a raised severity notifies again
-- =============================================================================

-- Round 1 is the alert's first notification; a later match that raises the severity of an open
-- alert queues round 2, 3, ... Attempts (retries) are counted within a round.
ALTER TABLE notification_deliveries ADD COLUMN IF NOT EXISTS round INTEGER NOT NULL DEFAULT 1;
ALTER TABLE notification_deliveries DROP CONSTRAINT IF EXISTS chk_deliveries_round;
ALTER TABLE notification_deliveries ADD CONSTRAINT chk_deliveries_round CHECK (round >= 1);
ALTER TABLE notification_deliveries DROP CONSTRAINT IF EXISTS uq_deliveries_attempt;
ALTER TABLE notification_deliveries ADD CONSTRAINT uq_deliveries_attempt UNIQUE (alert_id, channel_id, round, attempt);
COMMENT ON COLUMN notification_deliveries.round IS
    'Notification round of the alert: 1, then one more each time a grouped match raised its severity';

-- vigil_app's DML comes from 0016's default privileges when the same role runs this file;
-- granted explicitly too, since a DBA may apply migrations as another role.
GRANT SELECT, INSERT, UPDATE, DELETE ON alert_matches TO vigil_app;
