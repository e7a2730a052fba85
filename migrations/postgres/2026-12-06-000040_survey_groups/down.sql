-- Answers still waiting in a pending group are sealed and are lost here.
DROP TABLE survey_pending;
