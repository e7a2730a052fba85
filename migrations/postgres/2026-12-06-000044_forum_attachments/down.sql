DROP TABLE forum_attachments;
