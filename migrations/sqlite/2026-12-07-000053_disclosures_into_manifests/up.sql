-- The disclosure rows of before manifests move into manifests: this keeps
-- them aside, and the application moves them (grouped by export, time,
-- purpose, basis and fields; the bitmaps, keyed digests and seals need the
-- site secret, which SQL does not have) and drops the table, in one
-- transaction, right after migrating (`consent::manifests::convert_legacy`).
ALTER TABLE disclosures RENAME TO disclosures_legacy;
