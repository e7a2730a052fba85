-- A learner's lookup by the width of a manifest's learner range
-- (docs/ARCHITECTURE.md, "Finding a learner's manifests"): `user_span` is
-- the bit length of user_max - user_min, so a manifest of class c whose range
-- holds learner u has user_min in (u - 2^c, u]. One index range per class
-- answers "the manifests whose range holds u", reading only those whose
-- start is near u, instead of every manifest whose user_max is above u.
ALTER TABLE manifests ADD COLUMN user_span SMALLINT NOT NULL DEFAULT 0;
UPDATE manifests SET user_span = length(ltrim(CAST(CAST(user_max - user_min AS bit(64)) AS text), '0'));
DROP INDEX manifests_users;
CREATE INDEX manifests_reach ON manifests(user_span, user_min, user_max);

-- The class is guarded like the range it is derived from.
CREATE OR REPLACE FUNCTION manifests_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'manifests are append-only';
    END IF;
    IF (NEW.id, NEW.partner_id, NEW.recipient, NEW.purpose, NEW.basis, NEW.fields, NEW.record_kind, NEW.export_id,
        NEW.part, NEW.state, NEW.created_at, NEW.sha256, NEW.ledger_head, NEW.pinned, NEW.legal_reference, NEW.note,
        NEW.recorded_by, NEW.user_min, NEW.user_max, NEW.record_min, NEW.record_max, NEW.entries, NEW.set_digest,
        NEW.prev_hash, NEW.hash, NEW.mac, NEW.user_span)
       IS DISTINCT FROM
       (OLD.id, OLD.partner_id, OLD.recipient, OLD.purpose, OLD.basis, OLD.fields, OLD.record_kind, OLD.export_id,
        OLD.part, OLD.state, OLD.created_at, OLD.sha256, OLD.ledger_head, OLD.pinned, OLD.legal_reference, OLD.note,
        OLD.recorded_by, OLD.user_min, OLD.user_max, OLD.record_min, OLD.record_max, OLD.entries, OLD.set_digest,
        OLD.prev_hash, OLD.hash, OLD.mac, OLD.user_span)
       OR NEW.erased < OLD.erased THEN
        RAISE EXCEPTION 'manifests are append-only: erasure may only take learners out';
    END IF;
    RETURN NEW;
END
$$;

-- A resumed pull reads the export's manifests whose learner range overlaps
-- the page: pages go by learner, so their record ids are scattered and the
-- record range no longer narrows the search.
DROP INDEX manifests_export;
CREATE INDEX manifests_export ON manifests(export_id, user_max, user_min);
