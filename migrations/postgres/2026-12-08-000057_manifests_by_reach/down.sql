DROP INDEX manifests_export;
CREATE INDEX manifests_export ON manifests(export_id, record_max);
CREATE OR REPLACE FUNCTION manifests_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
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
DROP INDEX manifests_reach;
ALTER TABLE manifests DROP COLUMN user_span;
CREATE INDEX manifests_users ON manifests(user_max, user_min);
