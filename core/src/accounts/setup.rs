//! Who may create an account: the `SIGNUP` mode, and the setup code that guards the first account.
//!
//! On a server where sign-up is not open, the first account owns the server (everyone after it
//! needs an invite from it). So that a server reached by a stranger before its operator signs up
//! does not become the stranger's, the first sign-up must give the setup code: derived from
//! `JWT_SECRET` (every instance on one database agrees on it, and no database is needed to print
//! it), logged at start while no account exists, printed by `perpetuo setup-code`, and worth
//! nothing once an account exists.

use sha2::{Digest, Sha256};

use crate::platform::config::SignupMode;
use crate::platform::error::ServiceError;
use crate::platform::secret::SecretBytes;

/// Unambiguous characters (no 0/O, 1/I/L): a person copies the code from a log by eye.
const ALPHABET: &[u8; 31] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
const GROUPS: usize = 4;
const GROUP_LEN: usize = 4;

/// The setup code, `XXXX-XXXX-XXXX-XXXX` (79 bits). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct SetupCode(String);

impl std::fmt::Debug for SetupCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetupCode(..)")
    }
}

impl SetupCode {
    /// The code for this `JWT_SECRET`: the same on every instance and every start.
    pub fn derive(jwt_secret: &SecretBytes) -> Self {
        let digest =
            Sha256::new().chain_update(b"perpetuo setup code v1\0").chain_update(jwt_secret.expose()).finalize();
        let mut out = String::with_capacity(GROUPS * (GROUP_LEN + 1));
        for (i, byte) in digest.iter().take(GROUPS * GROUP_LEN).enumerate() {
            if i > 0 && i % GROUP_LEN == 0 {
                out.push('-');
            }
            out.push(char::from(ALPHABET[usize::from(*byte) % ALPHABET.len()]));
        }
        Self(out)
    }

    /// The code as a person types it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this code, ignoring case, spaces and dashes. Compares digests, so the
    /// time taken says nothing about how much of a guess was right.
    pub fn matches(&self, given: &str) -> bool {
        let normal = |s: &str| -> Vec<u8> {
            s.bytes().filter(u8::is_ascii_alphanumeric).map(|b| b.to_ascii_uppercase()).collect()
        };
        Sha256::digest(normal(given)) == Sha256::digest(normal(&self.0))
    }
}

/// The rules a sign-up without an invite meets.
#[derive(Debug, Clone)]
pub struct SignupRules {
    pub mode: SignupMode,
    pub setup_code: SetupCode,
}

impl SignupRules {
    pub fn new(mode: SignupMode, jwt_secret: &SecretBytes) -> Self {
        Self { mode, setup_code: SetupCode::derive(jwt_secret) }
    }

    /// Whether the first sign-up must give the setup code, given whether an account exists.
    pub fn wants_setup_code(&self, any_account: bool) -> bool {
        self.mode != SignupMode::Open && !any_account
    }

    /// Admits or refuses a sign-up without an invite.
    pub fn admit_uninvited(&self, any_account: bool, setup_code: Option<&str>) -> Result<(), ServiceError> {
        if self.mode == SignupMode::Open {
            return Ok(());
        }
        if any_account {
            return Err(ServiceError::Forbidden(match self.mode {
                SignupMode::Closed => "Sign-up is closed on this server.".into(),
                _ => "Sign-up is by invitation: ask a workspace owner for an invite link.".into(),
            }));
        }
        match setup_code.map(str::trim).filter(|c| !c.is_empty()) {
            Some(code) if self.setup_code.matches(code) => Ok(()),
            Some(_) => Err(ServiceError::Forbidden(
                "That setup code is not right. It is in Perpetuo's log from when it started \
                 (\"setup code\"), and `perpetuo setup-code` prints it again."
                    .into(),
            )),
            None => Err(ServiceError::Forbidden(
                "This server has no account yet: the first one needs the setup code from Perpetuo's \
                 log at start (\"setup code\"), or from `perpetuo setup-code` run with the server's settings."
                    .into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(mode: SignupMode) -> SignupRules {
        SignupRules::new(mode, &SecretBytes::new(b"a-jwt-secret-that-is-long-enough-0123456789".to_vec()))
    }

    #[test]
    fn the_code_is_stable_readable_and_tied_to_the_secret() {
        let code = rules(SignupMode::Invite).setup_code;
        assert_eq!(code, rules(SignupMode::Invite).setup_code);
        let other = SetupCode::derive(&SecretBytes::new(b"another-secret-that-is-long-enough-012345".to_vec()));
        assert_ne!(code, other);
        let text = code.expose();
        assert_eq!(text.len(), 19, "{text}");
        assert!(text.split('-').all(|g| g.len() == 4 && g.bytes().all(|b| ALPHABET.contains(&b))), "{text}");
        assert!(!format!("{code:?}").contains(text));
    }

    #[test]
    fn matching_ignores_case_spaces_and_dashes_only() {
        let code = rules(SignupMode::Invite).setup_code;
        let typed = code.expose().to_lowercase().replace('-', " ");
        assert!(code.matches(&typed));
        assert!(!code.matches(&code.expose()[..18]));
        assert!(!code.matches(""));
    }

    #[test]
    fn the_first_account_needs_the_code_unless_sign_up_is_open() {
        for mode in [SignupMode::Invite, SignupMode::Closed] {
            let r = rules(mode);
            let code = r.setup_code.expose().to_owned();
            assert!(r.wants_setup_code(false));
            assert!(matches!(r.admit_uninvited(false, None), Err(ServiceError::Forbidden(_))));
            assert!(matches!(r.admit_uninvited(false, Some("WRONG-CODE")), Err(ServiceError::Forbidden(_))));
            assert!(r.admit_uninvited(false, Some(&code)).is_ok());
            // Once an account exists the code is worth nothing.
            assert!(!r.wants_setup_code(true));
            assert!(matches!(r.admit_uninvited(true, Some(&code)), Err(ServiceError::Forbidden(_))));
        }
        let open = rules(SignupMode::Open);
        assert!(!open.wants_setup_code(false));
        assert!(open.admit_uninvited(false, None).is_ok() && open.admit_uninvited(true, None).is_ok());
    }
}
