-- Resources created through an API key that is not bound to a user (service and automation
-- keys) have no user to name: the creator columns become optional, and audit_logs records the
-- key that acted (details.api_key_id). A key bound to a user still fills them.
ALTER TABLE alert_rules ALTER COLUMN created_by DROP NOT NULL;
ALTER TABLE watchlists ALTER COLUMN created_by DROP NOT NULL;
ALTER TABLE watchlist_entries ALTER COLUMN added_by DROP NOT NULL;
ALTER TABLE notification_channels ALTER COLUMN created_by DROP NOT NULL;
ALTER TABLE training_datasets ALTER COLUMN created_by DROP NOT NULL;
ALTER TABLE exports ALTER COLUMN user_id DROP NOT NULL;
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'chk_exports_actor') THEN
        ALTER TABLE exports ADD CONSTRAINT chk_exports_actor CHECK (user_id IS NOT NULL OR api_key_id IS NOT NULL);
    END IF;
END $$;
