-- Verified certificates (CRT-1 … CRT-7).

-- Payments through the provider (CRT-1): only the provider's references and
-- the amount are kept, never card data. One row per checkout.
CREATE TABLE payments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    run_id BIGINT REFERENCES course_runs(id) ON DELETE SET NULL,
    -- 'verified' (a learner's track) or 'seats' (a sponsor's seats).
    purpose TEXT NOT NULL,
    partner_id BIGINT REFERENCES partners(id) ON DELETE SET NULL,
    quantity INTEGER NOT NULL,
    provider TEXT NOT NULL,
    checkout_id TEXT NOT NULL UNIQUE,
    payment_ref TEXT,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    -- 'pending', 'paid', 'refunded', 'expired'
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    paid_at TIMESTAMP,
    refunded_at TIMESTAMP
);
CREATE INDEX payments_user ON payments(user_id);
CREATE INDEX payments_ref ON payments(payment_ref);

-- Webhook events processed, by the provider's event id: each one once.
CREATE TABLE payment_events (
    event_id TEXT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL
);

-- Identity checks (CRT-2): the images are sealed blobs, removed (keys set
-- to NULL) as soon as staff decide.
CREATE TABLE identity_checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- 'pending', 'approved', 'denied', 'retry'
    status TEXT NOT NULL,
    id_photo_blob TEXT,
    face_photo_blob TEXT,
    submitted_at TIMESTAMP NOT NULL,
    decided_at TIMESTAMP,
    decided_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    reason TEXT,
    valid_until TIMESTAMP
);
CREATE INDEX identity_checks_user ON identity_checks(user_id);
CREATE INDEX identity_checks_status ON identity_checks(status);

-- Financial assistance (CRT-5).
CREATE TABLE assistance_applications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    run_id BIGINT NOT NULL REFERENCES course_runs(id) ON DELETE CASCADE,
    reason TEXT NOT NULL,
    circumstances TEXT NOT NULL,
    goals TEXT NOT NULL,
    -- 'pending', 'approved', 'denied'
    status TEXT NOT NULL,
    submitted_at TIMESTAMP NOT NULL,
    decided_at TIMESTAMP,
    decided_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    note TEXT
);
CREATE INDEX assistance_user_run ON assistance_applications(user_id, run_id);

-- Certificates (CRT-3, CRT-4, CRT-6). What the certificate says is copied at
-- issue, so the record stands alone after the learner's account is erased
-- (user_id then NULL) for the retention period (CRT-6).
CREATE TABLE certificates (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    code TEXT NOT NULL UNIQUE,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    run_id BIGINT REFERENCES course_runs(id) ON DELETE SET NULL,
    member_slug TEXT NOT NULL,
    name_at_issue TEXT NOT NULL,
    course_title TEXT NOT NULL,
    member_name TEXT NOT NULL,
    run_key TEXT NOT NULL,
    grade_percent DOUBLE PRECISION NOT NULL,
    issued_at TIMESTAMP NOT NULL,
    status_index BIGINT NOT NULL UNIQUE,
    revoked_at TIMESTAMP,
    revoked_reason TEXT,
    revoked_by BIGINT REFERENCES users(id) ON DELETE SET NULL
);
CREATE UNIQUE INDEX certificates_user_run ON certificates(user_id, run_id);

-- Proctoring (CRT-7): only the provider's session reference and outcome.
CREATE TABLE proctoring_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    enrollment_id BIGINT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    block_id BIGINT NOT NULL REFERENCES blocks(id) ON DELETE CASCADE,
    provider_ref TEXT NOT NULL UNIQUE,
    launch_url TEXT NOT NULL,
    -- 'open', 'passed', 'failed', 'purged'
    status TEXT NOT NULL,
    outcome TEXT,
    created_at TIMESTAMP NOT NULL,
    decided_at TIMESTAMP
);
CREATE INDEX proctoring_enrollment ON proctoring_sessions(enrollment_id, block_id);
