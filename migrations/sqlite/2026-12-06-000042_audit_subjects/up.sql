-- The audit log names whose data each entry was about (SEC-4).
--
-- `declared` says what the page declared: 'subjects' (the rows of
-- `audit_subjects` name them; none when the page showed nobody, an empty
-- search say) or 'none' (the page shows no one's personal data). NULL on
-- entries written before, and on a page that forgot to declare.
ALTER TABLE audit_log ADD COLUMN declared TEXT;

-- Whose personal data an entry showed or changed: a person (user id), and
-- the partner or course where it applies, or an item (an export id, a run,
-- a case) when the page is about many people at once. Append-only like the
-- log itself.
CREATE TABLE audit_subjects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    audit_id BIGINT NOT NULL REFERENCES audit_log(id),
    user_id BIGINT,
    partner_id BIGINT,
    course_id BIGINT,
    item TEXT
);
CREATE INDEX audit_subjects_entry ON audit_subjects(audit_id);
CREATE INDEX audit_subjects_user ON audit_subjects(user_id, audit_id);
CREATE TRIGGER audit_subjects_no_update BEFORE UPDATE ON audit_subjects
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_subjects_no_delete BEFORE DELETE ON audit_subjects
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

-- The query string that selected an entry's subjects. Kept apart because it
-- can hold an email address or a username: erasing a person deletes the
-- queries of the entries that name them (and those that searched for their
-- username or email), while the entry and its subject ids stay. Never changed.
CREATE TABLE audit_queries (
    audit_id BIGINT PRIMARY KEY NOT NULL REFERENCES audit_log(id),
    query TEXT NOT NULL
);
CREATE TRIGGER audit_queries_no_update BEFORE UPDATE ON audit_queries
BEGIN SELECT RAISE(ABORT, 'an audit query is never changed, only erased'); END;
