DROP TABLE support_replies;
DROP TABLE support_requests;
DROP TABLE breach_recipients;
DROP TABLE breach_notices;
