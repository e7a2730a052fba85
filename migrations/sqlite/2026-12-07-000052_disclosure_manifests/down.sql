DROP TABLE manifests;
