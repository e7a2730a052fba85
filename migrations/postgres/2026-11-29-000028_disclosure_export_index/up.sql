-- Exports look up their own earlier disclosures by export and learner
-- (at most one row per record and export); one composite index serves that
-- and every lookup by export alone.
DROP INDEX disclosures_export;
CREATE INDEX disclosures_export_user ON disclosures(export_id, user_id);
-- A disclosure row names its recipient in full (`recipient`), and partners
-- are never deleted, so the foreign key on `partner_id` guards nothing a
-- reader relies on; its check per inserted row was about a quarter of an
-- export page's INSERT.
ALTER TABLE disclosures DROP CONSTRAINT disclosures_partner_id_fkey;
