-- One row per export of the partner pull API: what was sent (record count,
-- bytes, SHA-256 of the exact body) once it finished, or that it did not
-- finish. A partner checks a download against it; it holds no learner data.
CREATE TABLE export_summaries (
    export_id TEXT PRIMARY KEY NOT NULL,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    format TEXT NOT NULL,
    status TEXT NOT NULL,
    records BIGINT NOT NULL DEFAULT 0,
    bytes BIGINT NOT NULL DEFAULT 0,
    sha256 TEXT,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
CREATE INDEX export_summaries_partner ON export_summaries (partner_id, started_at);
