-- 0009_watchlists.sql
-- Seed section 8: watchlists, watchlist_entries (setup order step 10).

-- =============================================================================
-- TABLE: watchlists
-- =============================================================================

CREATE TABLE IF NOT EXISTS watchlists (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name            VARCHAR(100) NOT NULL,
    description     TEXT,
    watch_type      watchlist_type_enum NOT NULL,
    is_active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_by      UUID NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_watchlists_creator
        FOREIGN KEY (created_by)
        REFERENCES users (id)
        ON DELETE RESTRICT
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_watchlists_watch_type ON watchlists (watch_type);
CREATE INDEX IF NOT EXISTS idx_watchlists_is_active ON watchlists (is_active) WHERE is_active = TRUE;
CREATE INDEX IF NOT EXISTS idx_watchlists_created_by ON watchlists (created_by);

-- Comments
COMMENT ON TABLE watchlists IS 'Named lists of persons to monitor (VIP, blacklist, suspect, custom)';

-- =============================================================================
-- TABLE: watchlist_entries
-- =============================================================================

CREATE TABLE IF NOT EXISTS watchlist_entries (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    watchlist_id    UUID NOT NULL,
    person_id       UUID NOT NULL,
    added_by        UUID NOT NULL,
    added_at        TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    notes           TEXT,

    -- Constraints
    CONSTRAINT uq_watchlist_entry UNIQUE (watchlist_id, person_id),
    CONSTRAINT fk_entries_watchlist
        FOREIGN KEY (watchlist_id)
        REFERENCES watchlists (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT fk_entries_person
        FOREIGN KEY (person_id)
        REFERENCES persons (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT fk_entries_added_by
        FOREIGN KEY (added_by)
        REFERENCES users (id)
        ON DELETE RESTRICT
        ON UPDATE CASCADE
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_watchlist_entries_watchlist_id ON watchlist_entries (watchlist_id);
CREATE INDEX IF NOT EXISTS idx_watchlist_entries_person_id ON watchlist_entries (person_id);

-- Comments
COMMENT ON TABLE watchlist_entries IS 'Persons assigned to watchlists';
