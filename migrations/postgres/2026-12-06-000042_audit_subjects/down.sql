DROP TABLE audit_queries;
DROP FUNCTION audit_queries_unchanged();
DROP TABLE audit_subjects;
ALTER TABLE audit_log DROP COLUMN declared;
