ALTER TABLE org_staff DROP COLUMN provisioned;
