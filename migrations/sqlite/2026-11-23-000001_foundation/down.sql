DROP TABLE jobs;
DROP TABLE parental_consents;
DROP TABLE account_tokens;
DROP TABLE sessions;
DROP TABLE role_grants;
DROP TABLE users;
