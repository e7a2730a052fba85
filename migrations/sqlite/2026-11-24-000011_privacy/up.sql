-- Data-subject requests (RGT-5): every export, erasure, rectification,
-- restriction and objection request, with received, due and done dates,
-- whether the learner made it on the site or staff entered it.
CREATE TABLE data_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    details TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT,
    entered_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    received_at TIMESTAMP NOT NULL,
    due_at TIMESTAMP NOT NULL,
    done_at TIMESTAMP
);
CREATE INDEX data_requests_open ON data_requests(status, due_at);
CREATE INDEX data_requests_user ON data_requests(user_id);

-- Copies of a learner's data (RGT-1), built by a job into the blob store.
CREATE TABLE data_exports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id BIGINT NOT NULL REFERENCES data_requests(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    blob_key TEXT,
    size_bytes BIGINT,
    sha256 TEXT,
    error TEXT,
    created_at TIMESTAMP NOT NULL,
    ready_at TIMESTAMP,
    expires_at TIMESTAMP,
    downloaded_at TIMESTAMP
);
CREATE INDEX data_exports_user ON data_exports(user_id);

-- Account erasure (RGT-2): a cancellable cool-off, then an ordered,
-- resumable run of steps, each logged; a legal hold parks it.
CREATE TABLE erasures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id BIGINT NOT NULL REFERENCES data_requests(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id),
    state TEXT NOT NULL,
    next_step INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    run_after TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP
);
-- One erasure in flight per account: a second request is answered, not queued.
CREATE UNIQUE INDEX erasures_one_open ON erasures(user_id) WHERE state IN ('waiting', 'running', 'held');
CREATE INDEX erasures_due ON erasures(state, run_after);

CREATE TABLE erasure_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    erasure_id BIGINT NOT NULL REFERENCES erasures(id) ON DELETE CASCADE,
    step TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX erasure_log_erasure ON erasure_log(erasure_id, id);

-- Legal holds (RET-3): while one is in force on an account, nothing of it is deleted.
CREATE TABLE legal_holds (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id),
    reason TEXT NOT NULL,
    placed_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    placed_at TIMESTAMP NOT NULL,
    lifted_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    lifted_at TIMESTAMP,
    lift_reason TEXT
);
CREATE INDEX legal_holds_user ON legal_holds(user_id, lifted_at);
