-- The rows moved into manifests stay there; the old table comes back empty.
DROP TABLE IF EXISTS disclosures_legacy;
CREATE TABLE disclosures (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL,
    partner_id BIGINT REFERENCES partners(id) ON DELETE SET NULL,
    recipient TEXT NOT NULL,
    purpose TEXT NOT NULL,
    fields TEXT NOT NULL,
    basis TEXT NOT NULL,
    consent_ledger_id BIGINT,
    legal_reference TEXT,
    note TEXT,
    recorded_by BIGINT,
    export_id TEXT NOT NULL,
    record_key TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX disclosures_user ON disclosures(user_id);
CREATE INDEX disclosures_export_user ON disclosures(export_id, user_id);
