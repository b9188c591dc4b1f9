//! Password hashing with Argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane), always run on the
//! blocking pool so a sign-in never stalls the async runtime.

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version, password_hash};
use std::sync::OnceLock;

use crate::platform::error::ServiceError;
use crate::platform::secret::SecretBytes;
use perpetuo_types::check_password_rules;

/// A password that passed the length rules, on its way to the hasher. A secret: not `Serialize`,
/// `Debug` prints a placeholder, wiped from memory when dropped.
#[derive(Debug, Clone)]
pub struct Password(SecretBytes);

impl Password {
    pub fn parse(raw: &str) -> Result<Self, String> {
        check_password_rules(raw)?;
        Ok(Self(SecretBytes::new(raw.as_bytes().to_vec())))
    }

    /// A PHC string with a fresh random salt.
    pub async fn hash(&self, permits: &Permits) -> Result<String, ServiceError> {
        hash(permits, self.0.clone()).await
    }
}

/// Argon2 runs at most this many at once (19 MiB each): a burst of sign-ins waits its turn instead
/// of taking gigabytes. One per service (per process in production).
#[derive(Debug, Clone)]
pub struct Permits(std::sync::Arc<tokio::sync::Semaphore>);

impl Default for Permits {
    fn default() -> Self {
        Self(std::sync::Arc::new(tokio::sync::Semaphore::new(max_concurrent())))
    }
}

/// Runs one Argon2 computation on the blocking pool, within the concurrency cap.
async fn bounded<T: Send + 'static>(
    permits: &Permits,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ServiceError> {
    let _permit =
        permits.0.acquire().await.map_err(|_| ServiceError::Internal("password hashing is shut down".into()))?;
    tokio::task::spawn_blocking(work).await.map_err(|e| ServiceError::Internal(format!("hashing task failed: {e}")))
}

/// How many Argon2 computations may run at once.
pub fn max_concurrent() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
    (2 * cores).clamp(2, 64)
}

fn hasher() -> Result<Argon2<'static>, ServiceError> {
    let params = Params::new(19_456, 2, 1, None).map_err(|e| ServiceError::Internal(format!("argon2 params: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password to a PHC string with a fresh random salt.
async fn hash(permits: &Permits, password: SecretBytes) -> Result<String, ServiceError> {
    bounded(permits, move || hash_blocking(password.expose())).await?
}

fn hash_blocking(password: &[u8]) -> Result<String, ServiceError> {
    hasher()?
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| ServiceError::Internal(format!("argon2 hash: {e}")))
}

/// Checks a password against a stored PHC string. When there is no stored hash (unknown email) or
/// no acceptable password, a dummy hash is verified instead so every case takes the same time.
pub async fn verify(
    permits: &Permits,
    password: Option<Password>,
    stored: Option<String>,
) -> Result<bool, ServiceError> {
    #[cfg(test)]
    let _ = VERIFICATIONS.try_with(|count| count.set(count.get() + 1));
    let known = stored.is_some() && password.is_some();
    let password = password.map_or_else(|| SecretBytes::new(b"not a password".to_vec()), |p| p.0);
    bounded(permits, move || {
        let phc = match stored {
            Some(phc) => phc,
            None => dummy_hash()?.to_owned(),
        };
        let parsed =
            PasswordHash::new(&phc).map_err(|e| ServiceError::Internal(format!("stored hash unreadable: {e}")))?;
        match hasher()?.verify_password(password.expose(), &parsed) {
            Ok(()) => Ok(known),
            Err(password_hash::Error::PasswordInvalid) => Ok(false),
            Err(e) => Err(ServiceError::Internal(format!("argon2 verify: {e}"))),
        }
    })
    .await?
}

#[cfg(test)]
tokio::task_local! {
    /// Argon2 verifications made by the current test task (sign-in paths must all make one).
    pub static VERIFICATIONS: std::cell::Cell<u32>;
}

fn dummy_hash() -> Result<&'static str, ServiceError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h);
    }
    let h = hash_blocking(b"perpetuo-dummy-password-for-timing")?;
    Ok(DUMMY.get_or_init(|| h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn argon2_runs_within_its_concurrency_cap() {
        let running = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let permits = Permits::default();
        let tasks: Vec<_> = (0..max_concurrent() * 4)
            .map(|_| {
                let (running, peak) = (std::sync::Arc::clone(&running), std::sync::Arc::clone(&peak));
                let permits = permits.clone();
                tokio::spawn(async move {
                    bounded(&permits, move || {
                        use std::sync::atomic::Ordering::SeqCst;
                        let now = running.fetch_add(1, SeqCst) + 1;
                        peak.fetch_max(now, SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        running.fetch_sub(1, SeqCst);
                    })
                    .await
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.is_ok_and(|r| r.is_ok()));
        }
        let peak = peak.load(std::sync::atomic::Ordering::SeqCst);
        assert!(peak <= max_concurrent() && peak >= 1, "{peak} at once, cap {}", max_concurrent());
    }

    fn secret(s: &str) -> Option<Password> {
        Password::parse(s).ok()
    }

    #[tokio::test]
    async fn hash_and_verify() {
        let phc = Password::parse("correct horse battery").unwrap().hash(&Permits::default()).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify(&Permits::default(), secret("correct horse battery"), Some(phc.clone())).await.unwrap());
        assert!(!verify(&Permits::default(), secret("wrong horse battery"), Some(phc.clone())).await.unwrap());
        // Salted: the same password hashes differently.
        assert_ne!(phc, Password::parse("correct horse battery").unwrap().hash(&Permits::default()).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        assert!(!verify(&Permits::default(), secret("perpetuo-dummy-password-for-timing"), None).await.unwrap());
        assert!(!verify(&Permits::default(), secret("anything at all"), None).await.unwrap());
        let phc = Password::parse("correct horse battery").unwrap().hash(&Permits::default()).await.unwrap();
        assert!(!verify(&Permits::default(), None, Some(phc)).await.unwrap(), "no acceptable password never verifies");
    }
}
