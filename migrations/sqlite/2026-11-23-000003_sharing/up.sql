-- Partners: member institutions, sponsors, exam bodies, organizations, researchers.
CREATE TABLE partners (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    member_id BIGINT UNIQUE REFERENCES members(id),
    contact_email TEXT NOT NULL,
    -- Profile fields a member institution asks for at enrollment (comma-separated).
    profile_fields TEXT NOT NULL,
    -- Secret per partner from which its learner pseudonyms are derived.
    pseudonym_salt TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE partner_api_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    prefix TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    last_used_at TIMESTAMP,
    revoked_at TIMESTAMP
);
CREATE INDEX partner_api_keys_partner ON partner_api_keys(partner_id);

-- The exact texts learners are shown, versioned; never edited in place.
CREATE TABLE consent_texts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT REFERENCES partners(id) ON DELETE CASCADE,
    partner_kind TEXT,
    purpose TEXT NOT NULL,
    locale TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX consent_texts_lookup ON consent_texts(purpose, locale);

-- Append-only, hash-chained evidence of every grant, decline, withdrawal and
-- restriction. Rows are never updated or deleted.
CREATE TABLE consent_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL,
    partner_id BIGINT,
    purpose TEXT NOT NULL,
    scope TEXT NOT NULL,
    action TEXT NOT NULL,
    categories TEXT NOT NULL,
    text_id BIGINT,
    text_version INTEGER,
    text_sha256 TEXT,
    method TEXT NOT NULL,
    actor TEXT NOT NULL,
    actor_user_id BIGINT,
    actor_name TEXT,
    note TEXT,
    ip TEXT,
    user_agent TEXT,
    created_at TIMESTAMP NOT NULL,
    prev_hash TEXT NOT NULL,
    row_hash TEXT NOT NULL
);
CREATE INDEX consent_ledger_user ON consent_ledger(user_id);

-- Current state derived from the ledger, kept in the same transaction; the
-- gate joins it. The ledger stays the evidence.
CREATE TABLE consents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    scope TEXT NOT NULL,
    status TEXT NOT NULL,
    categories TEXT NOT NULL,
    ledger_id BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (user_id, partner_id, purpose, scope)
);
CREATE INDEX consents_partner ON consents(partner_id, purpose);

CREATE TABLE sharing_restrictions (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    ledger_id BIGINT NOT NULL,
    since TIMESTAMP NOT NULL
);

-- One row per record handed to a partner, and per legal disclosure.
CREATE TABLE disclosures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL,
    partner_id BIGINT REFERENCES partners(id) ON DELETE SET NULL,
    recipient TEXT NOT NULL,
    purpose TEXT NOT NULL,
    fields TEXT NOT NULL,
    basis TEXT NOT NULL,
    consent_ledger_id BIGINT,
    legal_reference TEXT,
    note TEXT,
    recorded_by BIGINT,
    export_id TEXT NOT NULL,
    record_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX disclosures_user ON disclosures(user_id);
CREATE INDEX disclosures_export ON disclosures(export_id);

-- Seats a sponsor holds in a run, and the codes that redeem them.
CREATE TABLE sponsor_allocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    run_id BIGINT NOT NULL REFERENCES course_runs(id) ON DELETE CASCADE,
    seats INTEGER NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    note TEXT NOT NULL,
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE sponsor_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    allocation_id BIGINT NOT NULL REFERENCES sponsor_allocations(id) ON DELETE CASCADE,
    code TEXT NOT NULL UNIQUE,
    invited_email TEXT,
    invited_at TIMESTAMP,
    redeemed_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    redeemed_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX sponsor_codes_allocation ON sponsor_codes(allocation_id);

CREATE TABLE sponsorships (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    run_id BIGINT NOT NULL REFERENCES course_runs(id) ON DELETE CASCADE,
    code_id BIGINT NOT NULL REFERENCES sponsor_codes(id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    UNIQUE (partner_id, user_id, run_id)
);
CREATE INDEX sponsorships_partner ON sponsorships(partner_id);

-- The ledger is evidence: the database itself refuses to change or remove a row.
CREATE TRIGGER consent_ledger_no_update BEFORE UPDATE ON consent_ledger
BEGIN SELECT RAISE(ABORT, 'consent_ledger is append-only'); END;
CREATE TRIGGER consent_ledger_no_delete BEFORE DELETE ON consent_ledger
BEGIN SELECT RAISE(ABORT, 'consent_ledger is append-only'); END;
