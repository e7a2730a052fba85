-- End-of-course surveys (CRS-6). Answers carry no link to the learner: a
-- random id, the run, and no time. That the learner answered is recorded
-- apart, so nobody answers twice.
CREATE TABLE survey_responses (
    id TEXT PRIMARY KEY NOT NULL,
    run_id BIGINT NOT NULL REFERENCES course_runs(id) ON DELETE CASCADE,
    rating INTEGER NOT NULL,
    difficulty TEXT NOT NULL,
    recommend BOOLEAN NOT NULL,
    comment TEXT
);
CREATE INDEX survey_responses_run ON survey_responses(run_id);
CREATE TABLE survey_completions (
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    run_id BIGINT NOT NULL REFERENCES course_runs(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, run_id)
);
