DROP INDEX manifests_export;
CREATE INDEX manifests_export ON manifests(export_id, record_max);
DROP TRIGGER manifests_no_update;
DROP INDEX manifests_reach;
ALTER TABLE manifests DROP COLUMN user_span;
CREATE INDEX manifests_users ON manifests(user_max, user_min);
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
