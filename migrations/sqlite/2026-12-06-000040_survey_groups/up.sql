-- Survey answers that cannot be linked to who gave them (CRS-6). An answer
-- waits in its run's pending group: one row per run holding the waiting
-- answers, shuffled and sealed with the site's field keys, rewritten whole
-- at each answer. Once the group is complete its answers are written to
-- survey_responses together, in random order, with fresh random ids.
CREATE TABLE survey_pending (
    run_id BIGINT PRIMARY KEY NOT NULL REFERENCES course_runs(id) ON DELETE CASCADE,
    answers TEXT NOT NULL
);
-- The answers already given were written in the order of survey_completions:
-- they are stored again in random order, with new random ids (and still no
-- time). Dropping the old table (secure_delete is on) leaves no copy of
-- their old order in the file.
CREATE TABLE survey_responses_shuffled (
    id TEXT PRIMARY KEY NOT NULL,
    run_id BIGINT NOT NULL REFERENCES course_runs(id) ON DELETE CASCADE,
    rating INTEGER NOT NULL,
    difficulty TEXT NOT NULL,
    recommend BOOLEAN NOT NULL,
    comment TEXT
);
INSERT INTO survey_responses_shuffled (id, run_id, rating, difficulty, recommend, comment)
    SELECT lower(hex(randomblob(16))), run_id, rating, difficulty, recommend, comment
    FROM survey_responses ORDER BY random();
DROP TABLE survey_responses;
ALTER TABLE survey_responses_shuffled RENAME TO survey_responses;
CREATE INDEX survey_responses_run ON survey_responses(run_id);
