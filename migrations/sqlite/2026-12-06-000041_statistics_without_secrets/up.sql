-- Usage statistics keep the route a page view matched (`/password/reset/{token}`),
-- never its path: paths carried live password-reset and unsubscribe tokens,
-- usernames and certificate codes. Views recorded before are rewritten to the
-- route of this version that served them (the most specific one), and deleted
-- when none does.
CREATE TABLE page_view_routes (
    template TEXT NOT NULL,
    pattern TEXT NOT NULL,
    slashes INTEGER NOT NULL,
    weight INTEGER NOT NULL
);
INSERT INTO page_view_routes (template, pattern, slashes, weight) VALUES
    ('/', '/', 1, 100),
    ('/.well-known/jwks.json', '/.well-known/jwks.json', 2, 2200),
    ('/{doc}', '/%', 1, 99),
    ('/account', '/account', 1, 800),
    ('/account/certificates', '/account/certificates', 2, 2100),
    ('/account/communications', '/account/communications', 2, 2300),
    ('/account/email/confirm/{token}', '/account/email/confirm/%', 4, 2299),
    ('/account/privacy', '/account/privacy', 2, 1600),
    ('/account/privacy/exports/{id}', '/account/privacy/exports/%', 4, 2499),
    ('/account/security', '/account/security', 2, 1700),
    ('/account/security/verify', '/account/security/verify', 3, 2400),
    ('/account/support-needs', '/account/support-needs', 2, 2200),
    ('/account/verification', '/account/verification', 2, 2100),
    ('/audit', '/audit', 1, 600),
    ('/certificates/{code}', '/certificates/%', 2, 1399),
    ('/certificates/{code}/certificate.pdf', '/certificates/%/certificate.pdf', 3, 2999),
    ('/certificates/{code}/certificate.png', '/certificates/%/certificate.png', 3, 2999),
    ('/certificates/{code}/credential.json', '/certificates/%/credential.json', 3, 2999),
    ('/certificates/{code}/credential.jwt', '/certificates/%/credential.jwt', 3, 2899),
    ('/contact', '/contact', 1, 800),
    ('/cookies', '/cookies', 1, 800),
    ('/courses', '/courses', 1, 800),
    ('/courses/{slug}', '/courses/%', 2, 899),
    ('/courses/{slug}/assistance', '/courses/%/assistance', 3, 1999),
    ('/credentials/status/revocation', '/credentials/status/revocation', 3, 3000),
    ('/dashboard', '/dashboard', 1, 1000),
    ('/exams', '/exams', 1, 600),
    ('/exams/bookings/{id}/reschedule', '/exams/bookings/%/reschedule', 4, 2699),
    ('/exams/sessions/{id}/book', '/exams/sessions/%/book', 4, 2099),
    ('/files/{token}', '/files/%', 2, 699),
    ('/forums', '/forums', 1, 700),
    ('/forums/{slug}', '/forums/%', 2, 799),
    ('/forums/{slug}/search', '/forums/%/search', 3, 1499),
    ('/forums/{slug}/threads/{id}', '/forums/%/threads/%', 4, 1698),
    ('/forums/moderation', '/forums/moderation', 2, 1800),
    ('/forums/posts/{id}', '/forums/posts/%', 3, 1399),
    ('/forums/posts/{id}/{action}', '/forums/posts/%/%', 4, 1498),
    ('/forums/search', '/forums/search', 2, 1400),
    ('/issuers/{slug}', '/issuers/%', 2, 899),
    ('/learn/{slug}', '/learn/%', 2, 699),
    ('/learn/{slug}/exams/{block_id}/proctoring', '/learn/%/exams/%/proctoring', 5, 2498),
    ('/learn/{slug}/files/{block_id}', '/learn/%/files/%', 4, 1398),
    ('/learn/{slug}/forum', '/learn/%/forum', 3, 1299),
    ('/learn/{slug}/honor', '/learn/%/honor', 3, 1299),
    ('/learn/{slug}/live/{block_id}', '/learn/%/live/%', 4, 1298),
    ('/learn/{slug}/survey', '/learn/%/survey', 3, 1399),
    ('/learn/{slug}/units/{unit_id}', '/learn/%/units/%', 4, 1398),
    ('/orgs/join/{token}', '/orgs/join/%', 3, 1099),
    ('/parent-consent/{token}', '/parent-consent/%', 2, 1599),
    ('/parent-sharing/{token}', '/parent-sharing/%', 2, 1599),
    ('/partners', '/partners', 1, 900),
    ('/partners/{slug}', '/partners/%', 2, 999),
    ('/partners/{slug}/exams', '/partners/%/exams', 3, 1599),
    ('/partners/{slug}/exams/{id}', '/partners/%/exams/%', 4, 1698),
    ('/partners/{slug}/report', '/partners/%/report', 3, 1699),
    ('/partners/{slug}/report.csv', '/partners/%/report.csv', 3, 2099),
    ('/partners/{slug}/staff', '/partners/%/staff', 3, 1599),
    ('/partners/{slug}/staff.csv', '/partners/%/staff.csv', 3, 1999),
    ('/password/forgot', '/password/forgot', 2, 1600),
    ('/password/reset/{token}', '/password/reset/%', 3, 1599),
    ('/payments/cancelled', '/payments/cancelled', 2, 1900),
    ('/payments/return', '/payments/return', 2, 1600),
    ('/policies/accept', '/policies/accept', 2, 1600),
    ('/profile', '/profile', 1, 800),
    ('/redeem', '/redeem', 1, 700),
    ('/scim/v2/Groups', '/scim/v2/Groups', 3, 1500),
    ('/scim/v2/Groups/{id}', '/scim/v2/Groups/%', 4, 1599),
    ('/scim/v2/ResourceTypes', '/scim/v2/ResourceTypes', 3, 2200),
    ('/scim/v2/ResourceTypes/{id}', '/scim/v2/ResourceTypes/%', 4, 2299),
    ('/scim/v2/Schemas', '/scim/v2/Schemas', 3, 1600),
    ('/scim/v2/Schemas/{id}', '/scim/v2/Schemas/%', 4, 1699),
    ('/scim/v2/ServiceProviderConfig', '/scim/v2/ServiceProviderConfig', 3, 3000),
    ('/scim/v2/Users', '/scim/v2/Users', 3, 1400),
    ('/scim/v2/Users/{id}', '/scim/v2/Users/%', 4, 1499),
    ('/sharing', '/sharing', 1, 800),
    ('/signin', '/signin', 1, 700),
    ('/signin/oidc/{id}/callback', '/signin/oidc/%/callback', 4, 2199),
    ('/signin/oidc/finish', '/signin/oidc/finish', 3, 1900),
    ('/signin/oidc/link/{token}', '/signin/oidc/link/%', 4, 1799),
    ('/signin/verify', '/signin/verify', 2, 1400),
    ('/signup', '/signup', 1, 700),
    ('/staff', '/staff', 1, 600),
    ('/staff/analytics', '/staff/analytics', 2, 1600),
    ('/staff/assistance', '/staff/assistance', 2, 1700),
    ('/staff/auditors', '/staff/auditors', 2, 1500),
    ('/staff/certificates', '/staff/certificates', 2, 1900),
    ('/staff/identity', '/staff/identity', 2, 1500),
    ('/staff/identity/{id}', '/staff/identity/%', 3, 1599),
    ('/staff/identity/{id}/{which}', '/staff/identity/%/%', 4, 1698),
    ('/staff/jobs', '/staff/jobs', 2, 1100),
    ('/staff/legal-disclosures', '/staff/legal-disclosures', 2, 2400),
    ('/staff/malpractice', '/staff/malpractice', 2, 1800),
    ('/staff/malpractice/{id}', '/staff/malpractice/%', 3, 1899),
    ('/staff/newsletters', '/staff/newsletters', 2, 1800),
    ('/staff/notices', '/staff/notices', 2, 1400),
    ('/staff/payments', '/staff/payments', 2, 1500),
    ('/staff/policies', '/staff/policies', 2, 1500),
    ('/staff/privacy', '/staff/privacy', 2, 1400),
    ('/staff/sharing', '/staff/sharing', 2, 1400),
    ('/staff/support', '/staff/support', 2, 1400),
    ('/staff/support-needs', '/staff/support-needs', 2, 2000),
    ('/staff/support-needs/{user_id}', '/staff/support-needs/%', 3, 2099),
    ('/staff/support-team', '/staff/support-team', 2, 1900),
    ('/staff/support/{id}', '/staff/support/%', 3, 1499),
    ('/staff/texts', '/staff/texts', 2, 1200),
    ('/studio', '/studio', 1, 700),
    ('/studio/courses/{slug}', '/studio/courses/%', 3, 1599),
    ('/studio/courses/{slug}/export', '/studio/courses/%/export', 4, 2299),
    ('/studio/courses/{slug}/honor', '/studio/courses/%/honor', 4, 2199),
    ('/studio/courses/{slug}/survey', '/studio/courses/%/survey', 4, 2299),
    ('/studio/members/{slug}', '/studio/members/%', 3, 1599),
    ('/studio/runs/{id}/gradebook', '/studio/runs/%/gradebook', 4, 2299),
    ('/studio/runs/{id}/gradebook.csv', '/studio/runs/%/gradebook.csv', 4, 2699),
    ('/studio/units/{id}', '/studio/units/%', 3, 1399),
    ('/u/{username}', '/u/%', 2, 299),
    ('/unsubscribe/{token}', '/unsubscribe/%', 2, 1299),
    ('/verify-email/{token}', '/verify-email/%', 2, 1399);
DELETE FROM page_views WHERE NOT EXISTS (
    SELECT 1 FROM page_view_routes r
    WHERE page_views.path LIKE r.pattern
      AND LENGTH(page_views.path) - LENGTH(REPLACE(page_views.path, '/', '')) = r.slashes
);
UPDATE page_views SET path = (
    SELECT r.template FROM page_view_routes r
    WHERE page_views.path LIKE r.pattern
      AND LENGTH(page_views.path) - LENGTH(REPLACE(page_views.path, '/', '')) = r.slashes
    ORDER BY r.weight DESC, r.template
    LIMIT 1
);
DROP TABLE page_view_routes;

-- A cookie choice no longer records the account of whoever made it signed
-- in: nothing ties a visitor id (and so the views under it) to a person.
CREATE TABLE cookie_choices_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    visitor TEXT NOT NULL,
    analytics BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO cookie_choices_new (id, visitor, analytics, created_at)
    SELECT id, visitor, analytics, created_at FROM cookie_choices;
DROP TABLE cookie_choices;
ALTER TABLE cookie_choices_new RENAME TO cookie_choices;
CREATE INDEX cookie_choices_visitor ON cookie_choices(visitor);

-- Retention deletes these by age.
CREATE INDEX cookie_choices_time ON cookie_choices(created_at);
CREATE INDEX campaign_events_time ON campaign_events(created_at);
CREATE INDEX support_requests_updated ON support_requests(updated_at);
