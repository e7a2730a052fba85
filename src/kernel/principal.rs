//! Who is acting: the signed-in user as a request knows them, and the roles
//! they hold. Plain data, so every layer (the HTTP edge, every area) can name
//! them; granting and revoking roles is the accounts area's
//! (`accounts::roles`).

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Operator staff.
    Staff,
    /// Member institution administrator (scope: the member).
    MemberAdmin,
    Instructor,
    CourseStaff,
    Moderator,
    /// Acts for a partner (scope: `partner:<id>`): keys, reports, invitations.
    PartnerAdmin,
    /// Reads the audit log (SEC-4); appointed by staff, and may not be one.
    Auditor,
    /// Reads learners' recorded support needs (each view audited, SEC-4);
    /// appointed by staff.
    Support,
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Staff,
        Role::MemberAdmin,
        Role::Instructor,
        Role::CourseStaff,
        Role::Moderator,
        Role::PartnerAdmin,
        Role::Auditor,
        Role::Support,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Staff => "staff",
            Role::MemberAdmin => "member_admin",
            Role::Instructor => "instructor",
            Role::CourseStaff => "course_staff",
            Role::Moderator => "moderator",
            Role::PartnerAdmin => "partner_admin",
            Role::Auditor => "auditor",
            Role::Support => "support",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// What a request knows about its signed-in user: no password hash, no phone.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub id: i64,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub email_verified: bool,
    pub roles: Vec<(Role, String)>,
}

impl SessionUser {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.iter().any(|(r, _)| *r == role)
    }

    pub fn has_role_in(&self, role: Role, scope: &str) -> bool {
        self.roles.iter().any(|(r, s)| *r == role && s == scope)
    }

    pub fn is_staff(&self) -> bool {
        self.has_role(Role::Staff)
    }
}
