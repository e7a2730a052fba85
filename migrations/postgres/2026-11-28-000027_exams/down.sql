DROP TABLE malpractice_cases;
DROP TABLE support_needs;
DROP TABLE exam_results;
DROP TABLE exam_bookings;
DROP TABLE exam_sessions;
