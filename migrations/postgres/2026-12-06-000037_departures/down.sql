DROP TABLE partner_statements;
ALTER TABLE partner_sends DROP COLUMN departures_to;
ALTER TABLE partner_sends DROP COLUMN departures_from;
ALTER TABLE partner_destinations DROP COLUMN departures_sent;
DROP TABLE departures;
