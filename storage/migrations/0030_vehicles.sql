-- 0030_vehicles.sql
-- Vehicles as a track class (storage/SCHEMA.md, "Vehicles (0030)"). Not in the seeds.
-- Idempotent: every statement may run again on a migrated database.

-- =============================================================================
-- track_events: kind 'vehicle'
-- =============================================================================
-- A vehicle track's first observation gives one object_detected event, as a person track gives
-- human_detected: the mapping keeps it to one per track.
ALTER TABLE track_events DROP CONSTRAINT IF EXISTS chk_track_events_kind;
ALTER TABLE track_events ADD CONSTRAINT chk_track_events_kind CHECK (kind IN ('human', 'face', 'vehicle'));
-- The label the vehicle event states: a batch naming another (the node's majority vote moved from
-- car to truck, say) relabels the event without reading it first.
ALTER TABLE track_events ADD COLUMN IF NOT EXISTS object_label VARCHAR(32);
COMMENT ON COLUMN track_events.object_label IS 'The label the track''s event states (''vehicle'' only)';

-- =============================================================================
-- events: listing by object class
-- =============================================================================
-- ListEvents(object_classes) reads events.metadata->>'object_class' (ingest writes it on every
-- event); vehicles are a small share of a busy camera's events, so the listing needs the index to
-- find them newest first without scanning the persons'.
CREATE INDEX IF NOT EXISTS idx_events_object_class ON events ((metadata->>'object_class'), timestamp DESC);

-- =============================================================================
-- alert_rules: the object condition
-- =============================================================================
ALTER TABLE alert_rules ADD COLUMN IF NOT EXISTS object_class VARCHAR(16);  -- NULL = any class
ALTER TABLE alert_rules ADD COLUMN IF NOT EXISTS object_label VARCHAR(32);  -- NULL = any label
ALTER TABLE alert_rules DROP CONSTRAINT IF EXISTS chk_alert_rules_object;
ALTER TABLE alert_rules ADD CONSTRAINT chk_alert_rules_object CHECK (
    (object_class IS NULL OR object_class IN ('person', 'face', 'vehicle'))
    AND (object_label IS NULL OR object_class = 'vehicle'));
COMMENT ON COLUMN alert_rules.object_class IS
    'Only tracks of this class (person, face, vehicle); NULL = any. Activities recorded before classes were stored are person';
COMMENT ON COLUMN alert_rules.object_label IS
    'Only objects with this detector label (car, bus, truck, motorcycle, bicycle); needs object_class vehicle; NULL = any';

-- The deciding clause of a rule with an object condition: after zone, before activity type
-- (most specific first). A new enum value may be added inside the migration's transaction
-- (PostgreSQL 12+); nothing here uses it before the commit.
ALTER TYPE rule_clause_enum ADD VALUE IF NOT EXISTS 'object' BEFORE 'activity_type';
