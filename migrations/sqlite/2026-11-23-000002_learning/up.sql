CREATE TABLE members (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    slug TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    logo_blob TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

CREATE TABLE courses (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    member_id BIGINT NOT NULL REFERENCES members(id),
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    summary TEXT NOT NULL,
    description TEXT NOT NULL,
    subjects TEXT NOT NULL,
    language TEXT NOT NULL,
    effort TEXT,
    image_blob TEXT,
    published BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX courses_member_id ON courses(member_id);

CREATE TABLE course_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    course_id BIGINT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    run_key TEXT NOT NULL,
    starts_at TIMESTAMP NOT NULL,
    ends_at TIMESTAMP,
    enrollment_opens_at TIMESTAMP,
    enrollment_closes_at TIMESTAMP,
    pacing TEXT NOT NULL,
    access_days INTEGER,
    pass_threshold INTEGER NOT NULL,
    audit BOOLEAN NOT NULL,
    verified_price_cents INTEGER,
    currency TEXT NOT NULL,
    reminder_sent_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (course_id, run_key)
);

CREATE TABLE sections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    course_id BIGINT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    title TEXT NOT NULL
);
CREATE INDEX sections_course_id ON sections(course_id);

CREATE TABLE units (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    section_id BIGINT NOT NULL REFERENCES sections(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    title TEXT NOT NULL
);
CREATE INDEX units_section_id ON units(section_id);

CREATE TABLE blocks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    unit_id BIGINT NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX blocks_unit_id ON blocks(unit_id);

CREATE TABLE blob_files (
    key TEXT PRIMARY KEY NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE enrollments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    run_id BIGINT NOT NULL REFERENCES course_runs(id) ON DELETE CASCADE,
    track TEXT NOT NULL,
    status TEXT NOT NULL,
    enrolled_at TIMESTAMP NOT NULL,
    access_expires_at TIMESTAMP,
    unenrolled_at TIMESTAMP,
    grade_percent DOUBLE PRECISION NOT NULL DEFAULT 0,
    passed BOOLEAN NOT NULL DEFAULT FALSE,
    completed_at TIMESTAMP,
    last_activity_at TIMESTAMP,
    last_unit_id BIGINT,
    UNIQUE (user_id, run_id)
);
CREATE INDEX enrollments_run_id ON enrollments(run_id);

CREATE TABLE unit_completions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    enrollment_id BIGINT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    unit_id BIGINT NOT NULL REFERENCES units(id) ON DELETE CASCADE,
    completed_at TIMESTAMP NOT NULL,
    UNIQUE (enrollment_id, unit_id)
);

CREATE TABLE quiz_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    enrollment_id BIGINT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    block_id BIGINT NOT NULL REFERENCES blocks(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    answers TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    submitted_at TIMESTAMP NOT NULL,
    UNIQUE (enrollment_id, block_id, attempt)
);

CREATE TABLE live_attendance (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    enrollment_id BIGINT NOT NULL REFERENCES enrollments(id) ON DELETE CASCADE,
    block_id BIGINT NOT NULL REFERENCES blocks(id) ON DELETE CASCADE,
    joined_at TIMESTAMP NOT NULL,
    UNIQUE (enrollment_id, block_id)
);

CREATE TABLE course_feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    course_id BIGINT NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    rating INTEGER NOT NULL,
    comment TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    UNIQUE (user_id, course_id)
);

CREATE TABLE announcements (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id BIGINT NOT NULL REFERENCES course_runs(id) ON DELETE CASCADE,
    author_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
