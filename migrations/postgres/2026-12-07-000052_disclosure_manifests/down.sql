DROP TABLE manifests;
DROP FUNCTION manifests_append_only();
