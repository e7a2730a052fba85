DROP INDEX disclosures_export_user;
CREATE INDEX disclosures_export ON disclosures(export_id);
