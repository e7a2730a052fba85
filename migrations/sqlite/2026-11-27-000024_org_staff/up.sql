-- Organizations' staff, provisioned over SCIM 2.0 (SHR-7). Each record holds
-- only what the organization sent, and points at the account made for it.
-- userName is unique per organization, compared without case (RFC 7643).
CREATE TABLE org_staff (
    id TEXT PRIMARY KEY NOT NULL,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_name TEXT NOT NULL,
    user_name_key TEXT NOT NULL,
    external_id TEXT,
    given_name TEXT,
    family_name TEXT,
    display_name TEXT,
    title TEXT,
    department TEXT,
    work_email TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX org_staff_user_name ON org_staff(partner_id, user_name_key);
CREATE UNIQUE INDEX org_staff_user ON org_staff(user_id);
CREATE INDEX org_staff_external ON org_staff(partner_id, external_id);

CREATE TABLE org_groups (
    id TEXT PRIMARY KEY NOT NULL,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    display_name TEXT NOT NULL,
    external_id TEXT,
    version BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX org_groups_partner ON org_groups(partner_id);

CREATE TABLE org_group_members (
    group_id TEXT NOT NULL REFERENCES org_groups(id) ON DELETE CASCADE,
    staff_id TEXT NOT NULL REFERENCES org_staff(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, staff_id)
);
