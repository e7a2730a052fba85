-- Training an organization assigns to its staff, with a due date (SHR-7).
-- One assignment per person and course run; a reminder is sent once.
CREATE TABLE org_assignments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    staff_id TEXT NOT NULL REFERENCES org_staff(id) ON DELETE CASCADE,
    run_id BIGINT NOT NULL REFERENCES course_runs(id) ON DELETE CASCADE,
    due_on DATE NOT NULL,
    assigned_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    reminded_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX org_assignments_one ON org_assignments(staff_id, run_id);
CREATE INDEX org_assignments_partner ON org_assignments(partner_id);
