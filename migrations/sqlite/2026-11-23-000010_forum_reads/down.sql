DROP TABLE forum_follows;
DROP TABLE forum_reads;
