DROP TRIGGER consents_follow_ledger ON consents;
DROP FUNCTION consents_follow_ledger();
ALTER TABLE consent_ledger DROP COLUMN row_mac;
