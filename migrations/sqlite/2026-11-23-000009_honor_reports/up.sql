-- Honor-code reports (cheating, plagiarism) against a learner in a course,
-- tracked by the course's staff to a decision (FRM-6).
CREATE TABLE honor_reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    course_id BIGINT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    subject_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reporter_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    kind TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    decision_note TEXT,
    decided_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    decided_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX honor_reports_course ON honor_reports(course_id, status);
