DROP TRIGGER consents_follow_ledger_update;
DROP TRIGGER consents_follow_ledger_insert;
ALTER TABLE consent_ledger DROP COLUMN row_mac;
