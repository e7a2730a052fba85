DROP TABLE partner_send_rejections;
