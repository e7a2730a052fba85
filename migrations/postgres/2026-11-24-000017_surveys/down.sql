DROP TABLE survey_completions;
DROP TABLE survey_responses;
