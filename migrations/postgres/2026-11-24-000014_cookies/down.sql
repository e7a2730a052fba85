DROP TABLE page_views;
DROP TABLE cookie_choices;
