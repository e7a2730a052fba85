DROP TABLE campaign_events;
DROP TABLE campaigns;
DROP TABLE communication_choices;
DROP TABLE communication_preferences;
