DROP TABLE org_group_members;
DROP TABLE org_groups;
DROP TABLE org_staff;
