DROP TABLE partner_sends;
DROP TABLE partner_destinations;
