-- 0026_analytics_units.sql
-- Analytics as versioned units, and zone thresholds. Explained in storage/SCHEMA.md ("Analytics units (0026)").
--   * analytics_configs.analytic: the analytic unit that runs the configuration, "name@version"
--     (control/analytics/registry.py). Rows from before name version 1 of the unit called as their
--     activity type, the only version there was.
--   * camera_zones.*_threshold: the zone's defaults for its analytics (camera.proto ZoneThresholds);
--     a configuration on the zone that leaves the matching parameter unset uses them (the unit's
--     manifest says which parameter falls back to which). NULL = not set.
-- Idempotent: every statement may run again on a migrated database.

ALTER TABLE analytics_configs ADD COLUMN IF NOT EXISTS analytic VARCHAR(100);
UPDATE analytics_configs SET analytic = activity_type::text || '@1' WHERE analytic IS NULL;
ALTER TABLE analytics_configs ALTER COLUMN analytic SET NOT NULL;
ALTER TABLE analytics_configs DROP CONSTRAINT IF EXISTS chk_analytics_configs_analytic;
ALTER TABLE analytics_configs ADD CONSTRAINT chk_analytics_configs_analytic
    CHECK (analytic ~ '^[a-z][a-z0-9_]*@[0-9]+(\.[0-9]+)*$');
COMMENT ON COLUMN analytics_configs.analytic IS 'Analytic unit running it, "name@version" (RuleService.ListAnalytics)';
COMMENT ON COLUMN analytics_configs.parameters IS
    'Parameters set by the configuration, by name as the unit''s manifest describes them; durations in seconds';

ALTER TABLE camera_zones ADD COLUMN IF NOT EXISTS dwell_threshold_seconds DOUBLE PRECISION;
ALTER TABLE camera_zones ADD COLUMN IF NOT EXISTS loiter_threshold_seconds DOUBLE PRECISION;
ALTER TABLE camera_zones ADD COLUMN IF NOT EXISTS crowd_threshold INTEGER;
ALTER TABLE camera_zones DROP CONSTRAINT IF EXISTS chk_camera_zones_thresholds;
ALTER TABLE camera_zones ADD CONSTRAINT chk_camera_zones_thresholds CHECK (
    (dwell_threshold_seconds IS NULL OR dwell_threshold_seconds > 0)
    AND (loiter_threshold_seconds IS NULL OR loiter_threshold_seconds > 0)
    AND (crowd_threshold IS NULL OR crowd_threshold > 0));
COMMENT ON COLUMN camera_zones.dwell_threshold_seconds IS 'Default min_duration of dwell_time analytics on the zone';
COMMENT ON COLUMN camera_zones.loiter_threshold_seconds IS 'Default min_duration of loitering analytics on the zone';
COMMENT ON COLUMN camera_zones.crowd_threshold IS 'Default min_persons of crowding analytics on the zone';
