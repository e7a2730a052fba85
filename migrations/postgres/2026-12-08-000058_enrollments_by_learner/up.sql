-- The member export walks a partner's enrollments by learner, then
-- enrollment (its cursor is the pair), so that a page's learners are a
-- range of their own and a learner's disclosures sit in about one manifest
-- per export (docs/ARCHITECTURE.md).
CREATE INDEX enrollments_by_learner ON enrollments(user_id, id);
