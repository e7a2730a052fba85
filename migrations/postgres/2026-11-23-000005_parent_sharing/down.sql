DROP TABLE parent_sharing_requests;
