DROP TABLE proctoring_sessions;
DROP TABLE certificates;
DROP TABLE assistance_applications;
DROP TABLE identity_checks;
DROP TABLE payment_events;
DROP TABLE payments;
