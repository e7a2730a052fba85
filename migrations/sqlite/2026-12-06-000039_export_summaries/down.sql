DROP TABLE export_summaries;
