-- Exam sessions an exam-body partner offers for a course (CRT-8). The
-- counter `booked` is claimed by a conditional update, so a full session
-- refuses the next booking even when two arrive at once.
CREATE TABLE exam_sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    course_id BIGINT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    title TEXT NOT NULL,
    starts_at TIMESTAMP NOT NULL,
    time_zone TEXT NOT NULL,
    mode TEXT NOT NULL,
    location TEXT NOT NULL DEFAULT '',
    capacity INTEGER NOT NULL,
    booked INTEGER NOT NULL DEFAULT 0,
    booking_deadline TIMESTAMP NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX exam_sessions_course ON exam_sessions(course_id);
CREATE INDEX exam_sessions_partner ON exam_sessions(partner_id);

-- A candidate's place in a session. Rescheduling cancels one booking and
-- makes another, so a booking is always one candidate in one session.
CREATE TABLE exam_bookings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id BIGINT NOT NULL REFERENCES exam_sessions(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reference TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    cancelled_at TIMESTAMP
);
CREATE UNIQUE INDEX exam_bookings_one_live ON exam_bookings(session_id, user_id) WHERE status = 'booked';
CREATE INDEX exam_bookings_user ON exam_bookings(user_id);

-- One result per booking, whatever number of times it is sent; kept for
-- the retention period (default one year), then purged unless held.
CREATE TABLE exam_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    booking_id BIGINT NOT NULL UNIQUE REFERENCES exam_bookings(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    grade TEXT NOT NULL,
    score DOUBLE,
    passed BOOLEAN NOT NULL,
    source TEXT NOT NULL,
    received_at TIMESTAMP NOT NULL
);
CREATE INDEX exam_results_received ON exam_results(received_at);

-- Learning difficulties, disabilities and the adjustments a learner needs:
-- optional, both columns sealed (SEC-2).
CREATE TABLE support_needs (
    user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    needs TEXT NOT NULL,
    adjustments TEXT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Malpractice cases on a booking; a disclosure to the exam body is
-- recorded in `disclosures` with its legal reference (SHR-8).
CREATE TABLE malpractice_cases (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    booking_id BIGINT NOT NULL REFERENCES exam_bookings(id) ON DELETE CASCADE,
    opened_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    details TEXT NOT NULL,
    status TEXT NOT NULL,
    outcome TEXT,
    disclosure_id BIGINT,
    created_at TIMESTAMP NOT NULL,
    closed_at TIMESTAMP
);
CREATE INDEX malpractice_cases_booking ON malpractice_cases(booking_id);
