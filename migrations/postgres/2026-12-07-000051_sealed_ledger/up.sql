-- Each new ledger row carries a keyed seal (HMAC-SHA256 of its hash under a
-- key kept outside the database), so a chain recomputed by someone with the
-- database alone no longer verifies. Rows from before the seal have none.
ALTER TABLE consent_ledger ADD COLUMN row_mac TEXT;

-- The consent state the gate reads follows the ledger: a row may only say
-- what the newest ledger row for its learner, partner, purpose and scope
-- says. Anything else (setting a withdrawn consent back to granted) is
-- refused; removing a row only ever shares less and stays allowed.
CREATE FUNCTION consents_follow_ledger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM consent_ledger l
        WHERE l.id = NEW.ledger_id AND l.user_id = NEW.user_id AND l.partner_id = NEW.partner_id
          AND l.purpose = NEW.purpose AND l.scope = NEW.scope AND l.categories = NEW.categories
          AND NEW.status = CASE l.action WHEN 'grant' THEN 'granted' WHEN 'decline' THEN 'declined'
                                         WHEN 'withdraw' THEN 'withdrawn' END
          AND NOT EXISTS (SELECT 1 FROM consent_ledger n
                          WHERE n.user_id = l.user_id AND n.partner_id = l.partner_id AND n.purpose = l.purpose
                            AND n.scope = l.scope AND n.id > l.id AND n.action IN ('grant', 'decline', 'withdraw')))
    THEN
        RAISE EXCEPTION 'consents follow the consent ledger: append a ledger row instead';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER consents_follow_ledger BEFORE INSERT OR UPDATE ON consents
FOR EACH ROW EXECUTE FUNCTION consents_follow_ledger();
