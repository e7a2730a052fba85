DROP TABLE forum_bans;
DROP TABLE forum_reports;
DROP TABLE forum_trusted;
DROP TABLE forum_votes;
DROP TABLE forum_post_edits;
DROP TABLE forum_posts;
DROP TABLE forum_threads;
DROP TABLE forums;
