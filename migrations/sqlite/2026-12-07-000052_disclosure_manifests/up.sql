-- The disclosure log as manifests: one row per delivered page or send and
-- per group of identical (purpose, basis, fields, record kind) inside it,
-- naming its learners and records as compressed bitmaps (roaring, portable
-- serialization) instead of a row per record. See docs/ARCHITECTURE.md.
CREATE TABLE manifests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
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
    learners BLOB NOT NULL,
    records BLOB NOT NULL,
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
CREATE TRIGGER manifests_no_delete BEFORE DELETE ON manifests
BEGIN SELECT RAISE(ABORT, 'manifests are append-only'); END;
CREATE TRIGGER manifests_no_update BEFORE UPDATE ON manifests
WHEN NEW.id IS NOT OLD.id OR NEW.partner_id IS NOT OLD.partner_id OR NEW.recipient IS NOT OLD.recipient
  OR NEW.purpose IS NOT OLD.purpose OR NEW.basis IS NOT OLD.basis OR NEW.fields IS NOT OLD.fields
  OR NEW.record_kind IS NOT OLD.record_kind OR NEW.export_id IS NOT OLD.export_id OR NEW.part IS NOT OLD.part
  OR NEW.state IS NOT OLD.state OR NEW.created_at IS NOT OLD.created_at OR NEW.sha256 IS NOT OLD.sha256
  OR NEW.ledger_head IS NOT OLD.ledger_head OR NEW.pinned IS NOT OLD.pinned
  OR NEW.legal_reference IS NOT OLD.legal_reference OR NEW.note IS NOT OLD.note
  OR NEW.recorded_by IS NOT OLD.recorded_by OR NEW.user_min IS NOT OLD.user_min
  OR NEW.user_max IS NOT OLD.user_max OR NEW.record_min IS NOT OLD.record_min
  OR NEW.record_max IS NOT OLD.record_max OR NEW.entries IS NOT OLD.entries
  OR NEW.set_digest IS NOT OLD.set_digest OR NEW.prev_hash IS NOT OLD.prev_hash OR NEW.hash IS NOT OLD.hash
  OR NEW.mac IS NOT OLD.mac OR NEW.erased < OLD.erased
BEGIN SELECT RAISE(ABORT, 'manifests are append-only: erasure may only take learners out'); END;
