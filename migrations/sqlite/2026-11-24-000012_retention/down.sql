DROP TABLE inactivity_warnings;
