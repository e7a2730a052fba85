-- Survey answers that cannot be linked to who gave them (CRS-6). An answer
-- waits in its run's pending group: one row per run holding the waiting
-- answers, shuffled and sealed with the site's field keys, rewritten whole
-- at each answer. Once the group is complete its answers are written to
-- survey_responses together, in random order, with fresh random ids.
CREATE TABLE survey_pending (
    run_id BIGINT PRIMARY KEY NOT NULL REFERENCES course_runs(id) ON DELETE CASCADE,
    answers TEXT NOT NULL
);
-- The answers already given were written in the order of survey_completions
-- (and each in the transaction that recorded its learner): they are stored
-- again in random order, in this one transaction, with new random ids (and
-- still no time). Dropping the old table removes its file, old row order
-- and all.
CREATE TABLE survey_responses_shuffled (
    id TEXT PRIMARY KEY NOT NULL,
    run_id BIGINT NOT NULL REFERENCES course_runs(id) ON DELETE CASCADE,
    rating INTEGER NOT NULL,
    difficulty TEXT NOT NULL,
    recommend BOOLEAN NOT NULL,
    comment TEXT
);
INSERT INTO survey_responses_shuffled (id, run_id, rating, difficulty, recommend, comment)
    SELECT md5(random()::text || clock_timestamp()::text), run_id, rating, difficulty, recommend, comment
    FROM survey_responses ORDER BY random();
DROP TABLE survey_responses;
ALTER TABLE survey_responses_shuffled RENAME TO survey_responses;
ALTER TABLE survey_responses RENAME CONSTRAINT survey_responses_shuffled_pkey TO survey_responses_pkey;
ALTER TABLE survey_responses RENAME CONSTRAINT survey_responses_shuffled_run_id_fkey TO survey_responses_run_id_fkey;
CREATE INDEX survey_responses_run ON survey_responses(run_id);
