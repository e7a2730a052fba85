DROP TABLE audit_queries;
DROP TABLE audit_subjects;
ALTER TABLE audit_log DROP COLUMN declared;
