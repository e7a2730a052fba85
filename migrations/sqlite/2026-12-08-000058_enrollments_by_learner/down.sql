DROP INDEX enrollments_by_learner;
