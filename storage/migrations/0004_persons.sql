-- 0004_persons.sql
-- Seed section 4: persons, person_aliases, person_labels.
-- persons.primary_face_embedding_id gets its FK in 0005 (after face_embeddings).

-- =============================================================================
-- TABLE: persons
-- =============================================================================

CREATE TABLE IF NOT EXISTS persons (
    id                      UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name                    VARCHAR(200),       -- NULL for unknown persons
    status                  person_status_enum NOT NULL DEFAULT 'unknown',
    role                    VARCHAR(100),       -- Job role / title
    department              VARCHAR(100),
    company                 VARCHAR(200),
    notes                   TEXT,
    primary_face_embedding_id UUID,             -- Reference to preferred embedding
    created_by              UUID,               -- User who registered this person
    created_at              TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_persons_creator
        FOREIGN KEY (created_by)
        REFERENCES users (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE
    -- Note: primary_face_embedding_id FK added after face_embeddings table creation (0005)
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_persons_name ON persons (name) WHERE name IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_persons_status ON persons (status);
CREATE INDEX IF NOT EXISTS idx_persons_role ON persons (role) WHERE role IS NOT NULL;
CREATE INDEX IF NOT EXISTS idx_persons_created_by ON persons (created_by);
CREATE INDEX IF NOT EXISTS idx_persons_status_name ON persons (status, name);

-- Comments
COMMENT ON TABLE persons IS 'Known and unknown person registry';
COMMENT ON COLUMN persons.primary_face_embedding_id IS 'Preferred face embedding for recognition queries';
COMMENT ON COLUMN persons.status IS 'known/unknown/blacklisted/vip - drives alert behavior';

-- Trigger: auto-update updated_at
DROP TRIGGER IF EXISTS trg_persons_updated_at ON persons;
CREATE TRIGGER trg_persons_updated_at
    BEFORE UPDATE ON persons
    FOR EACH ROW
    EXECUTE FUNCTION fn_update_updated_at();

-- =============================================================================
-- TABLE: person_aliases
-- =============================================================================

CREATE TABLE IF NOT EXISTS person_aliases (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    person_id       UUID NOT NULL,
    alias_name      VARCHAR(200) NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_aliases_person
        FOREIGN KEY (person_id)
        REFERENCES persons (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT uq_aliases_person_name UNIQUE (person_id, alias_name)
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_aliases_person_id ON person_aliases (person_id);
CREATE INDEX IF NOT EXISTS idx_aliases_alias_name ON person_aliases (alias_name);

-- Comments
COMMENT ON TABLE person_aliases IS 'Alternative names for the same person';

-- =============================================================================
-- TABLE: person_labels
-- =============================================================================

CREATE TABLE IF NOT EXISTS person_labels (
    id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    person_id       UUID NOT NULL,
    label           person_label_enum NOT NULL,
    created_by      UUID,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Constraints
    CONSTRAINT fk_labels_person
        FOREIGN KEY (person_id)
        REFERENCES persons (id)
        ON DELETE CASCADE
        ON UPDATE CASCADE,
    CONSTRAINT fk_labels_creator
        FOREIGN KEY (created_by)
        REFERENCES users (id)
        ON DELETE SET NULL
        ON UPDATE CASCADE,
    CONSTRAINT uq_labels_person_label UNIQUE (person_id, label)
);

-- Indexes
CREATE INDEX IF NOT EXISTS idx_labels_person_id ON person_labels (person_id);
CREATE INDEX IF NOT EXISTS idx_labels_label ON person_labels (label);
CREATE INDEX IF NOT EXISTS idx_labels_person_label ON person_labels (person_id, label);

-- Comments
COMMENT ON TABLE person_labels IS 'Categorization labels for person filtering and rule targeting';
