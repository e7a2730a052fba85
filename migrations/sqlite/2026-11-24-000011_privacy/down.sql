DROP TABLE legal_holds;
DROP TABLE erasure_log;
DROP TABLE erasures;
DROP TABLE data_exports;
DROP TABLE data_requests;
