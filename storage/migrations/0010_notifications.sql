-- 0010_notifications.sql
-- Seed section 9: notification_channels, telegram_configs, whatsapp_configs
-- (setup order step 11). Bot tokens / API keys are AES-256-GCM ciphertext produced
-- by the application (BYTEA); pgcrypto is not used.

-- =============================================================================
-- TABLE: notification_channels
-- =============================================================================

CREATE TABLE IF NOT EXISTS notification_channels (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            VARCHAR(100) NOT NULL,
    channel_type    channel_type_enum NOT NULL,
    config          JSONB NOT NULL DEFAULT '{}',
    -- Common config: {"timeout_seconds": 30, "retry_count": 3, "rate_limit_per_min": 60}
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_by      UUID NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_channels_creator
        FOREIGN KEY (created_by)
        REFERENCES users (id)
        ON DELETE RESTRICT
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_channels_channel_type ON notification_channels (channel_type);
CREATE INDEX IF NOT EXISTS idx_channels_is_active ON notification_channels (is_active) WHERE is_active = TRUE;

-- Comments
COMMENT ON TABLE notification_channels IS 'Notification endpoint definitions';
COMMENT ON COLUMN notification_channels.config IS
    'Channel settings without secrets (secrets live encrypted in telegram_configs / whatsapp_configs or are encrypted by the application)';

-- =============================================================================
-- TABLE: telegram_configs
-- =============================================================================

CREATE TABLE IF NOT EXISTS telegram_configs (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    channel_id          UUID NOT NULL,
    bot_token_encrypted BYTEA NOT NULL,         -- AES-256-GCM ciphertext (application-side)
    chat_id             VARCHAR(50) NOT NULL,   -- Telegram chat/channel ID
    message_template    TEXT NOT NULL DEFAULT '{{alert_type}}: {{message}} at {{timestamp}}. Camera: {{camera_name}}',
    created_at          TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_telegram_channel
        FOREIGN KEY (channel_id)
        REFERENCES notification_channels (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT uq_telegram_channel UNIQUE (channel_id)
);

-- Comments
COMMENT ON TABLE telegram_configs IS 'Telegram Bot API configuration with encrypted credentials';
COMMENT ON COLUMN telegram_configs.bot_token_encrypted IS
    'Telegram bot token encrypted by the application with AES-256-GCM (BYTEA ciphertext incl. nonce and tag); key kept outside the database. Redacted from audit_logs.';

-- =============================================================================
-- TABLE: whatsapp_configs
-- =============================================================================

CREATE TABLE IF NOT EXISTS whatsapp_configs (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    channel_id          UUID NOT NULL,
    api_key_encrypted   BYTEA NOT NULL,         -- AES-256-GCM ciphertext (application-side)
    phone_number_id     VARCHAR(50) NOT NULL,   -- WhatsApp Business phone number ID
    recipient_groups    JSONB NOT NULL DEFAULT '[]',
    -- Format: ["security-team", "management", "reception"]
    message_template    TEXT NOT NULL DEFAULT '*Alert*: {{alert_type}} at {{location}}. Time: {{timestamp}}. Confidence: {{confidence}}%',
    created_at          TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_whatsapp_channel
        FOREIGN KEY (channel_id)
        REFERENCES notification_channels (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT uq_whatsapp_channel UNIQUE (channel_id)
);

-- Comments
COMMENT ON TABLE whatsapp_configs IS 'WhatsApp Business API configuration with encrypted credentials';
COMMENT ON COLUMN whatsapp_configs.api_key_encrypted IS
    'WhatsApp Business API key encrypted by the application with AES-256-GCM (BYTEA ciphertext incl. nonce and tag); key kept outside the database. Redacted from audit_logs.';
