-- The disclosure log as manifests: one row per delivered page or send and
-- per group of identical (purpose, basis, fields, record kind) inside it,
-- naming its learners and records as compressed bitmaps (roaring, portable
-- serialization) instead of a row per record. See docs/ARCHITECTURE.md.
CREATE TABLE manifests (
    id BIGSERIAL PRIMARY KEY,
    partner_id BIGINT,
    recipient TEXT NOT NULL,
    purpose TEXT NOT NULL,
    basis TEXT NOT NULL,
    fields TEXT NOT NULL,
    record_kind TEXT NOT NULL,
    export_id TEXT NOT NULL,
    part BIGINT NOT NULL,
    state TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    sha256 TEXT,
    ledger_head BIGINT NOT NULL,
    pinned TEXT,
    legal_reference TEXT,
    note TEXT,
    recorded_by BIGINT,
    learners BYTEA NOT NULL,
    records BYTEA NOT NULL,
    user_min BIGINT NOT NULL,
    user_max BIGINT NOT NULL,
    record_min BIGINT NOT NULL,
    record_max BIGINT NOT NULL,
    entries BIGINT NOT NULL,
    erased BIGINT NOT NULL DEFAULT 0,
    set_digest TEXT NOT NULL,
    erased_digest TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    mac TEXT
);
-- A learner's lookup: the manifests whose learner range holds them.
CREATE INDEX manifests_users ON manifests(user_max, user_min);
-- A resumed pull: the export's manifests whose record range overlaps a page.
CREATE INDEX manifests_export ON manifests(export_id, record_max);

-- Append-only, like the consent ledger; erasure alone may take learners out
-- of the sets (and count them), never change what the chain covers.
CREATE FUNCTION manifests_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'manifests are append-only';
    END IF;
    IF (NEW.id, NEW.partner_id, NEW.recipient, NEW.purpose, NEW.basis, NEW.fields, NEW.record_kind, NEW.export_id,
        NEW.part, NEW.state, NEW.created_at, NEW.sha256, NEW.ledger_head, NEW.pinned, NEW.legal_reference, NEW.note,
        NEW.recorded_by, NEW.user_min, NEW.user_max, NEW.record_min, NEW.record_max, NEW.entries, NEW.set_digest,
        NEW.prev_hash, NEW.hash, NEW.mac)
       IS DISTINCT FROM
       (OLD.id, OLD.partner_id, OLD.recipient, OLD.purpose, OLD.basis, OLD.fields, OLD.record_kind, OLD.export_id,
        OLD.part, OLD.state, OLD.created_at, OLD.sha256, OLD.ledger_head, OLD.pinned, OLD.legal_reference, OLD.note,
        OLD.recorded_by, OLD.user_min, OLD.user_max, OLD.record_min, OLD.record_max, OLD.entries, OLD.set_digest,
        OLD.prev_hash, OLD.hash, OLD.mac)
       OR NEW.erased < OLD.erased THEN
        RAISE EXCEPTION 'manifests are append-only: erasure may only take learners out';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER manifests_append_only BEFORE UPDATE OR DELETE ON manifests
FOR EACH ROW EXECUTE FUNCTION manifests_append_only();
