//! The principal a request runs as.

/// The group whose members may do anything (`$admins`).
pub const ADMINS_GROUP: &str = "$admins";
/// The group of operators: shutdown, scavenge, resign, persistent subscription management
/// (`$ops`). Its members do not bypass stream ACLs.
pub const OPS_GROUP: &str = "$ops";

/// Who a request runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials were given.
    Anonymous,
    /// The node itself, another node (a node certificate), or every request of an
    /// `--insecure` node: allowed everything.
    System,
    /// An authenticated user with its groups.
    User { name: String, groups: Vec<String> },
}

impl Principal {
    /// Whether the principal is authenticated (anything but anonymous).
    pub fn is_authenticated(&self) -> bool {
        !matches!(self, Principal::Anonymous)
    }

    /// Whether the principal bypasses every check: the system, or a member of `$admins`.
    pub fn is_admin(&self) -> bool {
        match self {
            Principal::Anonymous => false,
            Principal::System => true,
            Principal::User { groups, .. } => groups.iter().any(|g| g == ADMINS_GROUP),
        }
    }

    /// Whether `role` (a user name or group name, as ACLs list them) names this principal.
    /// A user has a role equal to its name and one per group; `$all` names everyone.
    pub fn has_role(&self, role: &str) -> bool {
        if role == "$all" {
            return true;
        }
        match self {
            Principal::Anonymous => false,
            Principal::System => true,
            Principal::User { name, groups } => name == role || groups.iter().any(|g| g == role),
        }
    }

    /// The name to log and to show (`$system`, `anonymous` for the others).
    pub fn name(&self) -> &str {
        match self {
            Principal::Anonymous => "anonymous",
            Principal::System => "$system",
            Principal::User { name, .. } => name,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_the_name_the_groups_and_all() {
        let user = Principal::User {
            name: "ouro".into(),
            groups: vec!["$ops".into(), "readers".into()],
        };
        assert!(user.has_role("ouro") && user.has_role("readers") && user.has_role("$all"));
        assert!(!user.has_role("$admins") && !user.is_admin());
        assert!(Principal::Anonymous.has_role("$all"));
        assert!(!Principal::Anonymous.has_role("anonymous"));
        assert!(Principal::System.is_admin());
    }
}
