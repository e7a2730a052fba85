-- A learner's lookup by the width of a manifest's learner range
-- (docs/ARCHITECTURE.md, "Finding a learner's manifests"): `user_span` is
-- the bit length of user_max - user_min, so a manifest of class c whose range
-- holds learner u has user_min in (u - 2^c, u]. One index range per class
-- answers "the manifests whose range holds u", reading only those whose
-- start is near u, instead of every manifest whose user_max is above u.
ALTER TABLE manifests ADD COLUMN user_span SMALLINT NOT NULL DEFAULT 0;
UPDATE manifests SET user_span = (user_max - user_min >= 1) + (user_max - user_min >= 2) + (user_max - user_min >= 4) + (user_max - user_min >= 8) + (user_max - user_min >= 16) + (user_max - user_min >= 32) + (user_max - user_min >= 64) + (user_max - user_min >= 128) + (user_max - user_min >= 256) + (user_max - user_min >= 512) + (user_max - user_min >= 1024) + (user_max - user_min >= 2048) + (user_max - user_min >= 4096) + (user_max - user_min >= 8192) + (user_max - user_min >= 16384) + (user_max - user_min >= 32768) + (user_max - user_min >= 65536) + (user_max - user_min >= 131072) + (user_max - user_min >= 262144) + (user_max - user_min >= 524288) + (user_max - user_min >= 1048576) + (user_max - user_min >= 2097152) + (user_max - user_min >= 4194304) + (user_max - user_min >= 8388608) + (user_max - user_min >= 16777216) + (user_max - user_min >= 33554432) + (user_max - user_min >= 67108864) + (user_max - user_min >= 134217728) + (user_max - user_min >= 268435456) + (user_max - user_min >= 536870912) + (user_max - user_min >= 1073741824) + (user_max - user_min >= 2147483648) + (user_max - user_min >= 4294967296) + (user_max - user_min >= 8589934592) + (user_max - user_min >= 17179869184) + (user_max - user_min >= 34359738368) + (user_max - user_min >= 68719476736) + (user_max - user_min >= 137438953472) + (user_max - user_min >= 274877906944) + (user_max - user_min >= 549755813888) + (user_max - user_min >= 1099511627776) + (user_max - user_min >= 2199023255552) + (user_max - user_min >= 4398046511104) + (user_max - user_min >= 8796093022208) + (user_max - user_min >= 17592186044416) + (user_max - user_min >= 35184372088832) + (user_max - user_min >= 70368744177664) + (user_max - user_min >= 140737488355328) + (user_max - user_min >= 281474976710656) + (user_max - user_min >= 562949953421312) + (user_max - user_min >= 1125899906842624) + (user_max - user_min >= 2251799813685248) + (user_max - user_min >= 4503599627370496) + (user_max - user_min >= 9007199254740992) + (user_max - user_min >= 18014398509481984) + (user_max - user_min >= 36028797018963968) + (user_max - user_min >= 72057594037927936) + (user_max - user_min >= 144115188075855872) + (user_max - user_min >= 288230376151711744) + (user_max - user_min >= 576460752303423488) + (user_max - user_min >= 1152921504606846976) + (user_max - user_min >= 2305843009213693952) + (user_max - user_min >= 4611686018427387904);
DROP INDEX manifests_users;
CREATE INDEX manifests_reach ON manifests(user_span, user_min, user_max);

-- The class is guarded like the range it is derived from.
DROP TRIGGER manifests_no_update;
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
  OR NEW.mac IS NOT OLD.mac OR NEW.user_span IS NOT OLD.user_span OR NEW.erased < OLD.erased
BEGIN SELECT RAISE(ABORT, 'manifests are append-only: erasure may only take learners out'); END;

-- A resumed pull reads the export's manifests whose learner range overlaps
-- the page: pages go by learner, so their record ids are scattered and the
-- record range no longer narrows the search.
DROP INDEX manifests_export;
CREATE INDEX manifests_export ON manifests(export_id, user_max, user_min);
