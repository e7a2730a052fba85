-- Whether the organization created the account (processor mode) or a person
-- joined with their own account by invitation. An organization manages only
-- the membership of a person who joined: never their account.
ALTER TABLE org_staff ADD COLUMN provisioned BOOLEAN NOT NULL DEFAULT 1;
UPDATE org_staff SET provisioned = 0
 WHERE EXISTS (SELECT 1 FROM org_invitations i
                WHERE i.accepted_by = org_staff.user_id AND i.partner_id = org_staff.partner_id);
