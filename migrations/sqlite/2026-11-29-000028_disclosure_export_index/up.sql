-- Exports look up their own earlier disclosures by export and learner
-- (at most one row per record and export); one composite index serves that
-- and every lookup by export alone.
DROP INDEX disclosures_export;
CREATE INDEX disclosures_export_user ON disclosures(export_id, user_id);
