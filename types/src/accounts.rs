//! Accounts on the wire: emails and passwords with their rules, users, workspaces, sessions.

use serde::{Deserialize, Serialize};

/// An email address, trimmed and lower-cased, checked for a plausible shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim().to_lowercase();
        let invalid = || "Enter a valid email address, such as name@example.com.".to_owned();
        if email.is_empty() || email.len() > 254 {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let bad_char = |c: char| {
            c.is_whitespace()
                || c.is_control()
                || matches!(c, '<' | '>' | '"' | ',' | ';' | '(' | ')' | '\\' | '[' | ']')
        };
        if local.is_empty()
            || local.len() > 64
            || domain.contains('@')
            || email.chars().any(bad_char)
            || !domain.contains('.')
            || domain.starts_with(['.', '-'])
            || domain.ends_with(['.', '-'])
            || domain.contains("..")
            || local.starts_with('.')
            || local.ends_with('.')
            || local.contains("..")
        {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Shortest and longest passwords accepted, in characters.
pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 1024;

/// Checks a password's length rules; the value itself stays with the caller.
pub fn check_password_rules(raw: &str) -> Result<(), String> {
    let chars = raw.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        return Err(format!("Passwords need at least {PASSWORD_MIN_CHARS} characters."));
    }
    if chars > PASSWORD_MAX_CHARS {
        return Err(format!("Passwords can have at most {PASSWORD_MAX_CHARS} characters."));
    }
    Ok(())
}

/// A workspace name: 1 to 80 characters after trimming, no control characters.
pub fn parse_workspace_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("Give the workspace a name.".into());
    }
    if name.chars().count() > 80 || name.chars().any(char::is_control) {
        return Err("Workspace names are at most 80 characters of plain text.".into());
    }
    Ok(name.to_owned())
}

/// The signed-in user, as shown to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserView {
    pub id: String,
    pub email: String,
}

/// A workspace, as shown to its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceView {
    pub id: String,
    pub name: String,
}

/// What the dashboard knows about the signed-in visitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionView {
    pub user: UserView,
    pub workspace: WorkspaceView,
    pub workspaces: Vec<WorkspaceView>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(Email::parse("  Alice@Example.COM ").map(|e| e.0), Ok("alice@example.com".into()));
    }

    #[test]
    fn bad_emails_are_refused() {
        for bad in [
            "",
            "alice",
            "alice@",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@@example.com",
            "a@example..com",
            "a@.example.com",
            ".a@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "accepted {bad:?}");
        }
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }

    #[test]
    fn password_lengths() {
        assert!(check_password_rules("123456789").is_err());
        assert!(check_password_rules("1234567890").is_ok());
        assert!(check_password_rules(&"é".repeat(1024)).is_ok());
        assert!(check_password_rules(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn workspace_names() {
        assert_eq!(parse_workspace_name("  Team  "), Ok("Team".into()));
        assert!(parse_workspace_name("   ").is_err());
        assert!(parse_workspace_name(&"w".repeat(81)).is_err());
    }

    proptest! {
        /// Well-formed addresses, in any case and with surrounding space, are accepted, come out
        /// lower-cased and trimmed, and parse to themselves again.
        #[test]
        fn valid_emails_are_accepted_and_stable(
            local in "[a-zA-Z0-9+_-]{1,10}(\\.[a-zA-Z0-9+_-]{1,10}){0,2}",
            domain in "[a-zA-Z0-9]([a-zA-Z0-9-]{0,18}[a-zA-Z0-9])?\\.[a-zA-Z]{2,6}",
            pad in " {0,3}",
        ) {
            let raw = format!("{pad}{local}@{domain}{pad}");
            let email = Email::parse(&raw);
            prop_assert!(email.is_ok(), "refused {:?}", raw);
            let email = email.unwrap_or_else(|_| unreachable!());
            prop_assert_eq!(email.as_str(), format!("{local}@{domain}").to_lowercase());
            prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
        }

        /// Whatever comes in, an accepted address is already in its normal form.
        #[test]
        fn accepted_emails_are_normal(raw in "\\PC{0,40}") {
            if let Ok(email) = Email::parse(&raw) {
                prop_assert_eq!(email.as_str(), raw.trim().to_lowercase());
                prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
            }
        }
    }
}

/// An open invite to a workspace, as its owners see it listed (never the token: it is shown once,
/// in the link made when the invite was created).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteView {
    pub id: String,
    /// The owner who made it (their email, when the account still exists).
    pub created_by: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
}
