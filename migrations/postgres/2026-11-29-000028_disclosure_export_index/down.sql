DROP INDEX disclosures_export_user;
CREATE INDEX disclosures_export ON disclosures(export_id);
ALTER TABLE disclosures ADD CONSTRAINT disclosures_partner_id_fkey
    FOREIGN KEY (partner_id) REFERENCES partners(id) ON DELETE SET NULL;
