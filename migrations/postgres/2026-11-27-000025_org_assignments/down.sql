DROP TABLE org_assignments;
