-- 0023_notification_deliveries.sql
-- Notification delivery (control/notifications): the settings webhook and e-mail channels need,
-- a configurable API base URL for Telegram and WhatsApp, and notification_deliveries, which
-- records every delivery attempt and doubles as the durable retry queue.
--
-- Deviations (control/notifications/SCHEMA_NOTES.md): not in the seed, which stores the
-- configuration but says nothing about delivery.

-- =============================================================================
-- Channel settings
-- =============================================================================

-- Webhook URL and SMTP settings are not secret and live in notification_channels.config next to
-- the seed's common keys; the two secrets are application-encrypted ciphertext (storage/crypto.py,
-- bound to column and row), like the Telegram and WhatsApp credentials.
ALTER TABLE notification_channels ADD COLUMN IF NOT EXISTS signing_secret_encrypted BYTEA;
ALTER TABLE notification_channels ADD COLUMN IF NOT EXISTS smtp_password_encrypted BYTEA;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'chk_channels_signing_secret_type') THEN
        ALTER TABLE notification_channels ADD CONSTRAINT chk_channels_signing_secret_type
            CHECK (signing_secret_encrypted IS NULL OR channel_type = 'webhook');
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'chk_channels_smtp_password_type') THEN
        ALTER TABLE notification_channels ADD CONSTRAINT chk_channels_smtp_password_type
            CHECK (smtp_password_encrypted IS NULL OR channel_type = 'email');
    END IF;
END $$;

COMMENT ON COLUMN notification_channels.config IS
    'Channel settings without secrets: the common keys timeout_seconds, retry_count, rate_limit_per_min; webhook: url; email: smtp_host, smtp_port, security, username, from_address, to_addresses, subject_template, body_template';
COMMENT ON COLUMN notification_channels.signing_secret_encrypted IS
    'Webhook HMAC signing secret encrypted by the application with AES-256-GCM (BYTEA ciphertext incl. nonce and tag); NULL = unsigned. Redacted from audit_logs.';
COMMENT ON COLUMN notification_channels.smtp_password_encrypted IS
    'SMTP password encrypted by the application with AES-256-GCM (BYTEA ciphertext incl. nonce and tag); NULL = no authentication. Redacted from audit_logs.';

-- NULL = the provider's public API (https://api.telegram.org, https://graph.facebook.com/v20.0);
-- set for a self-hosted Bot API server, a proxy or a test double.
ALTER TABLE telegram_configs ADD COLUMN IF NOT EXISTS base_url VARCHAR(2048);
ALTER TABLE whatsapp_configs ADD COLUMN IF NOT EXISTS base_url VARCHAR(2048);

COMMENT ON COLUMN telegram_configs.base_url IS 'Bot API base URL; NULL = https://api.telegram.org';
COMMENT ON COLUMN whatsapp_configs.base_url IS 'Cloud API base URL including the version; NULL = https://graph.facebook.com/v20.0';
COMMENT ON COLUMN whatsapp_configs.recipient_groups IS
    'Recipients: E.164 phone numbers or provider group ids, e.g. ["+6591234567", "security-team-group-id"]';

-- =============================================================================
-- TABLE: notification_deliveries
-- =============================================================================

DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE t.typname = 'delivery_status_enum' AND n.nspname = current_schema()) THEN
        CREATE TYPE delivery_status_enum AS ENUM ('queued', 'sending', 'delivered', 'failed', 'gave_up');
    END IF;
END $$;

-- One row per attempt to deliver an alert through a channel. A row starts 'queued' (due at
-- next_attempt_at), becomes 'sending' when a dispatcher claims it, and ends 'delivered',
-- 'failed' (a retry is scheduled: next_attempt_at, and the next attempt's 'queued' row) or
-- 'gave_up' (no retry: retries exhausted, a permanent error, or the channel was deactivated).
CREATE TABLE IF NOT EXISTS notification_deliveries (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    alert_id        UUID NOT NULL,
    channel_id      UUID NOT NULL,
    attempt         INTEGER NOT NULL,
    status          delivery_status_enum NOT NULL DEFAULT 'queued',
    response_code   INTEGER,                    -- HTTP status or SMTP reply code; NULL = no response
    error           TEXT,                       -- why the attempt failed; never contains secrets
    latency_ms      INTEGER,                    -- how long the attempt took
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),  -- when the attempt was scheduled
    attempted_at    TIMESTAMPTZ,                -- when it started; NULL while queued
    next_attempt_at TIMESTAMPTZ,                -- queued: due time; failed: when the retry is due

    CONSTRAINT fk_deliveries_alert
        FOREIGN KEY (alert_id)
        REFERENCES alerts (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT fk_deliveries_channel
        FOREIGN KEY (channel_id)
        REFERENCES notification_channels (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    -- the claim on an attempt: two dispatchers cannot schedule the same retry twice
    CONSTRAINT uq_deliveries_attempt UNIQUE (alert_id, channel_id, attempt),
    CONSTRAINT chk_deliveries_attempt CHECK (attempt >= 1),
    CONSTRAINT chk_deliveries_latency CHECK (latency_ms IS NULL OR latency_ms >= 0),
    CONSTRAINT chk_deliveries_error_length CHECK (error IS NULL OR char_length(error) <= 2000),
    CONSTRAINT chk_deliveries_schedule CHECK (
        CASE status
            WHEN 'queued' THEN next_attempt_at IS NOT NULL AND attempted_at IS NULL
            WHEN 'sending' THEN next_attempt_at IS NULL AND attempted_at IS NOT NULL
            WHEN 'failed' THEN next_attempt_at IS NOT NULL AND attempted_at IS NOT NULL
            ELSE next_attempt_at IS NULL AND attempted_at IS NOT NULL
        END)
);

-- Due attempts per channel (the dispatcher claims at most its free slots per channel)
CREATE INDEX IF NOT EXISTS idx_deliveries_due
    ON notification_deliveries (channel_id, next_attempt_at) WHERE status = 'queued';
-- Attempts whose dispatcher died mid-send
CREATE INDEX IF NOT EXISTS idx_deliveries_sending
    ON notification_deliveries (attempted_at) WHERE status = 'sending';
-- Attempts of the last minute per channel (rate limit); also serves channel deletes
CREATE INDEX IF NOT EXISTS idx_deliveries_channel_attempted
    ON notification_deliveries (channel_id, attempted_at);
-- Listings, newest first; per alert through uq_deliveries_attempt
CREATE INDEX IF NOT EXISTS idx_deliveries_created_at
    ON notification_deliveries (created_at DESC, id DESC);

COMMENT ON TABLE notification_deliveries IS
    'Every attempt to deliver an alert through a notification channel; queued rows are the durable retry queue';
COMMENT ON COLUMN notification_deliveries.next_attempt_at IS
    'queued: when the attempt is due; failed: when the retry (the next attempt''s queued row) is due; NULL otherwise';

-- vigil_app's DML comes from 0016's ALTER DEFAULT PRIVILEGES when the same role runs this file;
-- granted explicitly as well, since a DBA may apply migrations as another role.
GRANT SELECT, INSERT, UPDATE, DELETE ON notification_deliveries TO vigil_app;

-- A delivery is visible to whoever may see its alert (alerts are site-isolated): the policy's
-- subquery runs under the caller's own alerts policy.
ALTER TABLE notification_deliveries ENABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS deliveries_follow_alerts ON notification_deliveries;
CREATE POLICY deliveries_follow_alerts ON notification_deliveries
    FOR ALL
    TO PUBLIC
    USING (EXISTS (SELECT 1 FROM alerts a WHERE a.id = notification_deliveries.alert_id));
