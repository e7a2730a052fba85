DROP INDEX forum_threads_order;
DROP INDEX forum_reports_open;
