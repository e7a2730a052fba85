DROP TABLE honor_reports;
