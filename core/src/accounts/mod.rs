//! People and where they work: accounts (sign-up with a personal workspace, sign-in behind the
//! login throttle), workspaces and memberships, browser sessions and management-API tokens.

pub mod invites;
pub mod jwt;
pub mod password;
pub mod sessions;
pub mod setup;

use std::net::IpAddr;
use std::sync::Arc;

use surrealdb::types::SurrealValue;

use crate::platform::db::{Db, is_conflict, new_id, now_ms, root_cause};
use crate::platform::error::ServiceError;
use crate::platform::metrics::Metrics;
use crate::platform::rate::Limiters;
use crate::workspaces::{WorkspaceId, Workspaces, member_key};
use password::Password;
use perpetuo_types::{Email, UserView, WorkspaceView};

/// How long a user's token generation is trusted without the database: a sign-out everywhere (or
/// a password change) reaches every instance within this.
const GENERATION_TTL: std::time::Duration = std::time::Duration::from_secs(1);
const GENERATION_CAPACITY: usize = 100_000;

/// The accounts service: owns its database handle, the login throttle, and the cache of users'
/// token generations (every session and API token carries the generation it was issued under).
#[derive(Debug, Clone)]
pub struct Accounts {
    db: Db,
    workspaces: Workspaces,
    limiters: Arc<Limiters>,
    metrics: Arc<Metrics>,
    generations: Arc<crate::platform::cache::Slots<u64>>,
    /// The Argon2 concurrency cap.
    hashing: password::Permits,
    signup: setup::SignupRules,
    invites: invites::Invites,
    /// Sessions end this long after sign-in, however active.
    session_max_age: std::time::Duration,
}

/// What a person gives to create an account.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignUp<'a> {
    pub email: &'a str,
    pub password: &'a str,
    /// An invite token (`inv_...`): the account joins that workspace.
    pub invite: Option<&'a str>,
    /// The setup code, which only the first account on a server whose sign-up is not open needs.
    pub setup_code: Option<&'a str>,
}

impl<'a> SignUp<'a> {
    pub fn new(email: &'a str, password: &'a str) -> Self {
        Self { email, password, ..Self::default() }
    }
}

#[derive(SurrealValue)]
struct UserRow {
    id: String,
    email: String,
    password_hash: String,
}

/// An invited sign-up that could not go through with these details (the email has an account
/// and the password is not its password): the invite is used up.
fn invite_refused() -> ServiceError {
    ServiceError::Forbidden(
        "This invite could not be used with these details, and it is now used up: ask the owner for a new one. \
         (An existing account accepts an invite with its own password.)"
            .into(),
    )
}

impl Accounts {
    pub fn new(
        db: Db,
        workspaces: Workspaces,
        limiters: Arc<Limiters>,
        metrics: Arc<Metrics>,
        session_max_age: std::time::Duration,
        signup: setup::SignupRules,
    ) -> Self {
        let generations = Arc::new(crate::platform::cache::Slots::new(GENERATION_TTL, GENERATION_CAPACITY));
        let invites = invites::Invites::new(db.clone());
        Self {
            db,
            workspaces,
            limiters,
            metrics,
            generations,
            session_max_age,
            hashing: password::Permits::default(),
            signup,
            invites,
        }
    }

    /// Invitations to workspaces.
    pub fn invites(&self) -> &invites::Invites {
        &self.invites
    }

    /// Whether the next sign-up without an invite must give the setup code: sign-up is not open
    /// and no account exists yet.
    pub async fn wants_setup_code(&self) -> Result<bool, ServiceError> {
        if self.signup.mode == crate::platform::config::SignupMode::Open {
            return Ok(false);
        }
        Ok(self.signup.wants_setup_code(self.any_user().await?))
    }

    /// The setup code the first account needs (see `setup`).
    pub fn setup_code(&self) -> &setup::SetupCode {
        &self.signup.setup_code
    }

    /// Whether any account exists.
    async fn any_user(&self) -> Result<bool, ServiceError> {
        let mut response = self.db.query("SELECT VALUE id FROM user LIMIT 1").await?;
        let ids: Vec<surrealdb::types::RecordId> = response.take(0)?;
        Ok(!ids.is_empty())
    }

    /// The user's token generation: sessions and API tokens issued under an older one are void.
    /// `Unauthenticated` when the user no longer exists.
    pub async fn generation(&self, user_id: &str) -> Result<u64, ServiceError> {
        if let Some(generation) = self.generations.get(user_id) {
            return Ok(generation);
        }
        let seen = self.generations.generation();
        let mut response = self
            .db
            .query("SELECT VALUE token_gen ?? 0 FROM type::record('user', $id)")
            .bind(("id", user_id.to_owned()))
            .await?;
        let generation: Option<i64> = response.take(0)?;
        let generation = u64::try_from(generation.ok_or(ServiceError::Unauthenticated)?).unwrap_or(0);
        self.generations.put(user_id.to_owned(), generation, seen);
        Ok(generation)
    }

    /// Ends every session and API token of the user at once; returns the new generation.
    pub async fn sign_out_everywhere(&self, user_id: &str) -> Result<u64, ServiceError> {
        let mut response = self
            .db
            .query("UPDATE type::record('user', $id) SET token_gen = (token_gen ?? 0) + 1 RETURN VALUE token_gen")
            .bind(("id", user_id.to_owned()))
            .await?;
        let generation: Option<i64> = response.take(0)?;
        self.generations.invalidate(user_id);
        Ok(u64::try_from(generation.ok_or(ServiceError::Unauthenticated)?).unwrap_or(0))
    }

    /// Changes the password after checking the current one (behind the login throttle), and ends
    /// every other session and token; returns the new generation for the caller's own session.
    pub async fn change_password(
        &self,
        ip: IpAddr,
        user_id: &str,
        current: &str,
        new: &str,
    ) -> Result<u64, ServiceError> {
        #[derive(SurrealValue)]
        struct Row {
            email: String,
            password_hash: String,
        }
        let mut response = self
            .db
            .query("SELECT email, password_hash FROM type::record('user', $id)")
            .bind(("id", user_id.to_owned()))
            .await?;
        let row: Row = response.take::<Option<Row>>(0)?.ok_or(ServiceError::Unauthenticated)?;
        self.throttle(ip, &row.email)?;
        let current = Password::parse(current).ok();
        if !password::verify(&self.hashing, current, Some(row.password_hash)).await? {
            return Err(ServiceError::Invalid("The current password is not right.".into()));
        }
        let new = Password::parse(new).map_err(ServiceError::Invalid)?;
        let hash = new.hash(&self.hashing).await?;
        let mut response = self
            .db
            .query(
                "UPDATE type::record('user', $id) SET password_hash = $hash, token_gen = (token_gen ?? 0) + 1
                 RETURN VALUE token_gen",
            )
            .bind(("id", user_id.to_owned()))
            .bind(("hash", hash))
            .await?;
        let generation: Option<i64> = response.take(0)?;
        self.generations.invalidate(user_id);
        Ok(u64::try_from(generation.ok_or(ServiceError::Unauthenticated)?).unwrap_or(0))
    }

    /// The session's user, if the session is still good: signed in, younger than the absolute
    /// lifetime, and issued under the user's current generation. Read only: the page guard ends a
    /// session that is not good (`end_stale_session`), once, before anything renders for it.
    pub async fn session_user(&self, session: &tower_sessions_core::Session) -> Result<Option<String>, ServiceError> {
        let Some(user_id) = sessions::user_id(session).await? else {
            return Ok(None);
        };
        let (signed_in_at, generation) = sessions::issued(session).await?;
        let max_age = i64::try_from(self.session_max_age.as_millis()).unwrap_or(i64::MAX);
        let expired = signed_in_at.is_none_or(|at| now_ms().saturating_sub(at) > max_age);
        let current = match self.generation(&user_id).await {
            Ok(current) => Some(current),
            Err(ServiceError::Unauthenticated) => None,
            Err(e) => return Err(e),
        };
        if expired || current != Some(generation) {
            return Ok(None);
        }
        Ok(Some(user_id))
    }

    /// Ends a session that is signed in but no longer good; the user when it is good.
    pub async fn end_stale_session(
        &self,
        session: &tower_sessions_core::Session,
    ) -> Result<Option<String>, ServiceError> {
        if let Some(user) = self.session_user(session).await? {
            return Ok(Some(user));
        }
        if sessions::user_id(session).await?.is_some() {
            sessions::sign_out(session).await?;
        }
        Ok(None)
    }

    /// Sign-in and sign-up attempts per client address and per email: refused before any
    /// database or hashing work.
    fn throttle(&self, ip: IpAddr, email: &str) -> Result<(), ServiceError> {
        let decision = self.limiters.check_login(ip, email);
        if decision.allowed {
            return Ok(());
        }
        self.metrics.rate_limited("login");
        Err(ServiceError::RateLimited { retry_after: decision.retry_after })
    }

    /// Creates a user: with an invite, as a member of the invite's workspace (the invite used up
    /// in the same transaction); otherwise with a personal workspace they own, where sign-up
    /// allows it (`SIGNUP`; the first account with the setup code).
    pub async fn sign_up(&self, ip: IpAddr, form: SignUp<'_>) -> Result<(UserView, WorkspaceView), ServiceError> {
        use crate::platform::config::SignupMode;
        self.throttle(ip, form.email)?;
        let email = Email::parse(form.email).map_err(ServiceError::Invalid)?;
        let password = Password::parse(form.password).map_err(ServiceError::Invalid)?;
        let invite = form.invite.map(str::trim).filter(|t| !t.is_empty());
        let invited = match invite {
            Some(token) if self.signup.mode != SignupMode::Closed => {
                Some((token, self.invites.workspace_of(token).await?))
            }
            _ => None,
        };
        if let Some((token, ws)) = invited {
            return self.join_by_invite(email, password, token, ws).await;
        }
        let any_account = self.signup.mode != SignupMode::Open && self.any_user().await?;
        self.signup.admit_uninvited(any_account, form.setup_code)?;
        let password_hash = password.hash(&self.hashing).await?;
        let (user_id, workspace_id, now) = (new_id(), new_id(), now_ms());
        let workspace_name = "Personal".to_owned();
        let mut response = self
            .db
            .query(
                "BEGIN TRANSACTION;
                 CREATE type::record('user', $user) CONTENT { email: $email, password_hash: $hash, created_at: $now } RETURN NONE;
                 CREATE type::record('workspace', $ws) CONTENT { name: $name, created_by: $user, created_at: $now } RETURN NONE;
                 CREATE type::record('member', $member) CONTENT { workspace: $ws, user: $user, role: 'owner', created_at: $now } RETURN NONE;
                 COMMIT TRANSACTION;",
            )
            .bind(("user", user_id.clone()))
            .bind(("email", email.as_str().to_owned()))
            .bind(("hash", password_hash))
            .bind(("ws", workspace_id.clone()))
            .bind(("name", workspace_name.clone()))
            .bind(("member", member_key(&workspace_id, &user_id)))
            .bind(("now", now))
            .await?;
        if let Some(error) = root_cause(response.take_errors()) {
            if is_conflict(&error) {
                return Err(ServiceError::Conflict(
                    "An account with this email already exists. Sign in instead.".into(),
                ));
            }
            return Err(ServiceError::Database(error));
        }
        Ok((
            UserView { id: user_id, email: email.as_str().to_owned() },
            WorkspaceView { id: workspace_id, name: workspace_name },
        ))
    }

    /// Creates a user as a member of the invite's workspace, using the invite up, atomically. An
    /// account that already has the email accepts the invite with its own password; with any other
    /// password the invite is used up all the same, so one invite answers at most one question about
    /// who has an account here.
    async fn join_by_invite(
        &self,
        email: Email,
        password: Password,
        token: &str,
        ws: WorkspaceId,
    ) -> Result<(UserView, WorkspaceView), ServiceError> {
        let mut response = self
            .db
            .query("SELECT record::id(id) AS id, email, password_hash FROM user WHERE email = $email LIMIT 1")
            .bind(("email", email.as_str().to_owned()))
            .await?;
        if let Some(existing) = response.take::<Option<UserRow>>(0)? {
            return self.accept_invite(existing, password, token, ws).await;
        }
        let password_hash = password.hash(&self.hashing).await?;
        let (user_id, now) = (new_id(), now_ms());
        let mut response = self
            .db
            .query(
                "BEGIN TRANSACTION;
                 LET $used = (UPDATE invite SET used_at = $now, used_by = $user
                              WHERE hash = $hash AND used_at = NONE AND revoked_at = NONE AND expires_at > $now RETURN VALUE id);
                 IF array::len($used) = 0 { THROW 'invite no longer valid' };
                 CREATE type::record('user', $user) CONTENT { email: $email, password_hash: $pw, created_at: $now } RETURN NONE;
                 CREATE type::record('member', $member) CONTENT { workspace: $ws, user: $user, role: 'member', created_at: $now } RETURN NONE;
                 COMMIT TRANSACTION;",
            )
            .bind(("hash", invites::stored_hash(token)))
            .bind(("user", user_id.clone()))
            .bind(("email", email.as_str().to_owned()))
            .bind(("pw", password_hash))
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("member", member_key(ws.as_str(), &user_id)))
            .bind(("now", now))
            .await?;
        if let Some(error) = root_cause(response.take_errors()) {
            if is_conflict(&error) {
                // Made by someone else a moment ago: the same answer as a wrong password.
                self.burn_invite(token).await?;
                return Err(invite_refused());
            }
            if error.to_string().contains("invite no longer valid") {
                return Err(invites::invalid());
            }
            return Err(ServiceError::Database(error));
        }
        let workspace = self.workspaces.view(&ws).await?;
        Ok((UserView { id: user_id, email: email.as_str().to_owned() }, workspace))
    }

    /// An existing account accepts an invite with its own password (and joins as a member, unless
    /// it already belongs to the workspace); any other password uses the invite up.
    async fn accept_invite(
        &self,
        existing: UserRow,
        password: Password,
        token: &str,
        ws: WorkspaceId,
    ) -> Result<(UserView, WorkspaceView), ServiceError> {
        if !password::verify(&self.hashing, Some(password), Some(existing.password_hash.clone())).await? {
            self.burn_invite(token).await?;
            return Err(invite_refused());
        }
        let now = now_ms();
        let mut response = self
            .db
            .query(
                "BEGIN TRANSACTION;
                 LET $used = (UPDATE invite SET used_at = $now, used_by = $user
                              WHERE hash = $hash AND used_at = NONE AND revoked_at = NONE AND expires_at > $now RETURN VALUE id);
                 IF array::len($used) = 0 { THROW 'invite no longer valid' };
                 IF (SELECT VALUE id FROM type::record('member', $member)) = [] {
                     CREATE type::record('member', $member) CONTENT { workspace: $ws, user: $user, role: 'member', created_at: $now } RETURN NONE;
                 };
                 COMMIT TRANSACTION;",
            )
            .bind(("hash", invites::stored_hash(token)))
            .bind(("user", existing.id.clone()))
            .bind(("ws", ws.as_str().to_owned()))
            .bind(("member", member_key(ws.as_str(), &existing.id)))
            .bind(("now", now))
            .await?;
        if let Some(error) = root_cause(response.take_errors()) {
            if error.to_string().contains("invite no longer valid") {
                return Err(invites::invalid());
            }
            return Err(ServiceError::Database(error));
        }
        let workspace = self.workspaces.view(&ws).await?;
        Ok((UserView { id: existing.id, email: existing.email }, workspace))
    }

    /// Uses an invite up without anyone joining (a refused attempt).
    async fn burn_invite(&self, token: &str) -> Result<(), ServiceError> {
        self.db
            .query("UPDATE invite SET used_at = $now WHERE hash = $hash AND used_at = NONE RETURN NONE")
            .bind(("hash", invites::stored_hash(token)))
            .bind(("now", now_ms()))
            .await?
            .check()?;
        Ok(())
    }

    /// Checks email and password. Unknown emails and wrong passwords take the same path and time
    /// and give the same error.
    pub async fn sign_in(&self, ip: IpAddr, email: &str, password: &str) -> Result<UserView, ServiceError> {
        self.throttle(ip, email)?;
        // A malformed email or an out-of-range password cannot match any account: same answer.
        let email = Email::parse(email).ok();
        let password = Password::parse(password).ok();
        let row = match (&email, &password) {
            (Some(email), Some(_)) => {
                let mut response = self
                    .db
                    .query("SELECT record::id(id) AS id, email, password_hash FROM user WHERE email = $email LIMIT 1")
                    .bind(("email", email.as_str().to_owned()))
                    .await?;
                response.take::<Option<UserRow>>(0)?
            }
            _ => None,
        };
        let stored_hash = row.as_ref().map(|r| r.password_hash.clone());
        let matches = password::verify(&self.hashing, password, stored_hash).await?;
        match row {
            Some(row) if matches => Ok(UserView { id: row.id, email: row.email }),
            _ => Err(ServiceError::InvalidCredentials),
        }
    }

    /// The user by id, if it still exists.
    pub async fn user(&self, user_id: &str) -> Result<Option<UserView>, ServiceError> {
        #[derive(SurrealValue)]
        struct Row {
            id: String,
            email: String,
        }
        let mut response = self
            .db
            .query("SELECT record::id(id) AS id, email FROM type::record('user', $id)")
            .bind(("id", user_id.to_owned()))
            .await?;
        Ok(response.take::<Option<Row>>(0)?.map(|r| UserView { id: r.id, email: r.email }))
    }

    /// The user's default workspace: the first one they joined.
    pub async fn default_workspace(&self, user_id: &str) -> Result<WorkspaceId, ServiceError> {
        let list = self.workspaces.list_for_user(user_id).await?;
        let first = list.into_iter().next().ok_or(ServiceError::NotFound("workspace"))?;
        self.workspaces.authorize(user_id, &first.id).await
    }

    /// The session's user and current workspace (re-checked: membership is proven, not assumed);
    /// falls back to the user's first workspace when the stored one is gone. `None` when signed
    /// out.
    pub async fn session_workspace(
        &self,
        session: &tower_sessions_core::Session,
        checked: Option<&sessions::CheckedSession>,
    ) -> Result<Option<(String, WorkspaceId)>, ServiceError> {
        let user_id = match checked {
            Some(checked) => checked.0.clone(),
            None => match self.session_user(session).await? {
                Some(user_id) => user_id,
                None => return Ok(None),
            },
        };
        if let Some(ws) = sessions::workspace_id(session).await? {
            match self.workspaces.authorize(&user_id, &ws).await {
                Ok(ws) => return Ok(Some((user_id, ws))),
                Err(ServiceError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        match self.default_workspace(&user_id).await {
            Ok(ws) => {
                sessions::set_workspace(session, &ws).await?;
                Ok(Some((user_id, ws)))
            }
            Err(ServiceError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::config::Settings;
    use crate::platform::rate::LimitClock;

    fn accounts(db: &Db) -> Accounts {
        let limiters = Arc::new(Limiters::new(&Settings::for_tests(), LimitClock::manual()));
        Accounts::new(
            db.clone(),
            Workspaces::new(db.clone()),
            limiters,
            Arc::new(Metrics::default()),
            std::time::Duration::from_secs(30 * 86_400),
            setup::SignupRules::new(crate::platform::config::SignupMode::Open, &Settings::for_tests().jwt_secret),
        )
    }

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn sign_up_then_duplicate_then_sign_in() {
        let db = Db::memory().await.unwrap();
        let accounts = accounts(&db);
        let (user, ws) = accounts.sign_up(IP, SignUp::new("Dup@Example.com", "long enough password")).await.unwrap();
        assert_eq!(user.email, "dup@example.com");
        let again = accounts.sign_up(IP, SignUp::new("dup@example.com ", "another password!")).await;
        assert!(matches!(again, Err(ServiceError::Conflict(_))), "{again:?}");
        let signed_in = accounts.sign_in(IP, "DUP@example.com", "long enough password").await.unwrap();
        assert_eq!(signed_in.id, user.id);
        assert!(matches!(
            accounts.sign_in(IP, "dup@example.com", "wrong password!").await,
            Err(ServiceError::InvalidCredentials)
        ));
        assert_eq!(accounts.default_workspace(&user.id).await.unwrap().as_str(), ws.id);
    }

    /// Every way a sign-in can fail does the same Argon2 work as a wrong password for a real
    /// account, so the time taken does not tell whether an email has an account. Counted, not
    /// timed.
    #[tokio::test]
    async fn every_failed_sign_in_makes_exactly_one_verification() {
        let db = Db::memory().await.unwrap();
        let accounts = accounts(&db);
        accounts.sign_up(IP, SignUp::new("known@example.com", "long enough password")).await.unwrap();
        for (email, password) in [
            ("known@example.com", "wrong password!!"),
            ("ghost@example.com", "wrong password!!"),
            ("not an email", "wrong password!!"),
            ("known@example.com", "short"),
            ("known@example.com", "long enough password"),
        ] {
            let verified = password::VERIFICATIONS
                .scope(std::cell::Cell::new(0), async {
                    let _ = accounts.sign_in(IP, email, password).await;
                    password::VERIFICATIONS.with(std::cell::Cell::get)
                })
                .await;
            assert_eq!(verified, 1, "{email} / {password}");
        }
    }

    #[tokio::test]
    async fn the_login_throttle_refuses_before_any_work() {
        let db = Db::memory().await.unwrap();
        let accounts = accounts(&db);
        // The test settings allow 10 attempts a minute per address and per email.
        for _ in 0..10 {
            let _ = accounts.sign_in(IP, "nobody@example.com", "wrong password!").await;
        }
        let refused = accounts.sign_in(IP, "nobody@example.com", "wrong password!").await;
        assert!(matches!(refused, Err(ServiceError::RateLimited { .. })), "{refused:?}");
        let refused = accounts.sign_up(IP, SignUp::new("new@example.com", "long enough password")).await;
        assert!(matches!(refused, Err(ServiceError::RateLimited { .. })), "sign-up shares the limit: {refused:?}");
    }
}
