-- A date of birth is asked for at sign-up (the age gate, ACC-9), but not every
-- account has one: staff an organization syncs in (SHR-7) hold only what the
-- organization sent, operator accounts were never asked, and an erased account
-- keeps none.
ALTER TABLE users ALTER COLUMN date_of_birth DROP NOT NULL;
UPDATE users SET date_of_birth = NULL WHERE status = 'erased';
