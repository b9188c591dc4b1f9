//! The one application state, shared by the dashboard, the management API and the gateway: the
//! services (each owning its handles and cache slots) and the process-wide parts they share. It
//! is the core's top floor: it knows every service, and nothing below knows it. The binary builds
//! the parts (`startup`) and assembles them here.

use std::sync::Arc;

use crate::accounts::Accounts;
use crate::accounts::jwt::JwtKeys;
use crate::budgets::Budgets;
use crate::keys::ApiKeys;
use crate::platform::config::Settings;
use crate::platform::crypto::Cipher;
use crate::platform::db::Db;
use crate::platform::error::ServiceError;
use crate::platform::live::Follower;
use crate::platform::metrics::Metrics;
use crate::platform::rate::Limiters;
use crate::providers::Providers;
use crate::providers::breaker::Breakers;
use crate::usage::estimate::Estimator;
use crate::usage::{Prices, Reports, UsageSink};
use crate::workspaces::Workspaces;

/// The state every handler gets: one `Arc`, so handing it to a request costs one atomic
/// increment whatever it holds.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What the state holds: the services (reached through their accessors) and what they share.
#[derive(Debug)]
pub struct Services {
    pub settings: Arc<Settings>,
    /// The database handle, for start-up, readiness and background work; requests go through
    /// the services.
    pub db: Db,
    pub cipher: Arc<Cipher>,
    pub jwt: Arc<JwtKeys>,
    pub limiters: Arc<Limiters>,
    pub breakers: Arc<Breakers>,
    pub metrics: Arc<Metrics>,
    /// The queue to the usage writer.
    pub usage: UsageSink,
    pub accounts: Accounts,
    pub workspaces: Workspaces,
    pub keys: ApiKeys,
    pub providers: Providers,
    pub prices: Prices,
    pub reports: Reports,
    pub budgets: Budgets,
    pub limits: crate::limits::Limits,
    /// What providers last said about their own rate limits (rests shared across instances).
    pub pressure: crate::providers::pressure::Pressure,
    pub estimator: Estimator,
    /// How each provider's attempts have gone on this instance.
    pub health: Arc<crate::providers::health::Health>,
    /// Body capture (off unless a workspace's owner turns it on).
    pub captures: crate::captures::Captures,
    /// OpenTelemetry trace export (off unless an OTLP endpoint is set).
    pub telemetry: crate::platform::telemetry::Telemetry,
    /// Gateway calls running apart from their clients' connections (a call outlives a client that
    /// left, to record what the provider billed): a stopping server waits for them.
    pub calls: tokio_util::task::TaskTracker,
}

impl Services {
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    pub fn workspaces(&self) -> &Workspaces {
        &self.workspaces
    }

    pub fn captures(&self) -> &crate::captures::Captures {
        &self.captures
    }

    pub fn keys(&self) -> &ApiKeys {
        &self.keys
    }

    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    pub fn prices(&self) -> &Prices {
        &self.prices
    }

    pub fn reports(&self) -> &Reports {
        &self.reports
    }

    pub fn budgets(&self) -> &Budgets {
        &self.budgets
    }

    pub fn limits(&self) -> &crate::limits::Limits {
        &self.limits
    }

    /// The workspace's limits, keys' and providers' named after them.
    pub async fn limit_views(
        &self,
        ws: &crate::workspaces::WorkspaceId,
    ) -> Result<Vec<perpetuo_types::LimitView>, ServiceError> {
        let mut names: std::collections::HashMap<String, String> = self.keys.names(ws).await?.into_iter().collect();
        names.extend(self.providers.list(ws).await?.into_iter().map(|p| (p.id, p.label)));
        self.limits.list(ws, &names).await
    }

    /// Token estimates of prompts (large ones off the serving threads).
    pub fn estimator(&self) -> &Estimator {
        &self.estimator
    }

    /// Creates an API key, and gives it the budget and limits the workspace's owners set for new
    /// keys (a member's key too: the member has no say in them).
    pub async fn create_key(
        &self,
        who: &crate::workspaces::Membership,
        input: perpetuo_types::NewApiKey,
    ) -> Result<perpetuo_types::CreatedApiKey, ServiceError> {
        let created = self.keys.create(who, input).await?;
        let (ws, id) = (who.workspace(), &created.key.id);
        if let Err(e) = self.budgets.give_new_key(ws, id).await.and(self.limits.give_new_key(ws, id).await) {
            // A key without the owners' defaults must not be handed out: it is deleted at once.
            let _ = self.keys.delete(who, id).await;
            return Err(e);
        }
        Ok(created)
    }

    /// The workspace's budgets with their current periods, keys' budgets named after their keys.
    pub async fn budget_views(
        &self,
        ws: &crate::workspaces::WorkspaceId,
    ) -> Result<Vec<perpetuo_types::BudgetView>, ServiceError> {
        let names = self.keys.names(ws).await?.into_iter().collect();
        self.budgets.list(ws, &names).await
    }

    /// The workspace's providers with their health on this instance (calls, errors, latency,
    /// breaker), for the providers tab and `GET /api/v1/providers`.
    pub async fn provider_views(
        &self,
        ws: &crate::workspaces::WorkspaceId,
    ) -> Result<Vec<perpetuo_types::ProviderView>, ServiceError> {
        let mut views = self.providers.list(ws).await?;
        for view in &mut views {
            self.add_health(view);
        }
        Ok(views)
    }

    /// One call's whole story: its record and steps, and its bodies when they were captured
    /// (opened for the workspace's owners; members learn only that there are some).
    pub async fn request_story(
        &self,
        who: &crate::workspaces::Membership,
        id: &str,
    ) -> Result<perpetuo_types::RequestStory, ServiceError> {
        let ws = who.workspace();
        let labels = self.reports.labels(ws).await?;
        let row = self.reports.request(ws, id.trim(), &labels).await?;
        let bodies = match who.role() {
            crate::workspaces::Role::Owner => match self.captures.read(ws, &row.request_id).await? {
                Some(bodies) => perpetuo_types::Bodies::Captured(bodies),
                None => perpetuo_types::Bodies::NotCaptured,
            },
            crate::workspaces::Role::Member if self.captures.exists(ws, &row.request_id).await? => {
                perpetuo_types::Bodies::OwnersOnly
            }
            crate::workspaces::Role::Member => perpetuo_types::Bodies::NotCaptured,
        };
        Ok(perpetuo_types::RequestStory { row, bodies })
    }

    /// One provider with its health on this instance.
    pub async fn provider_view(
        &self,
        ws: &crate::workspaces::WorkspaceId,
        id: &str,
    ) -> Result<perpetuo_types::ProviderView, ServiceError> {
        let mut view = self.providers.get(ws, id).await?;
        self.add_health(&mut view);
        Ok(view)
    }

    fn add_health(&self, view: &mut perpetuo_types::ProviderView) {
        let now = crate::platform::db::now_ms();
        let rested = self.pressure.now();
        let breaker = self.breakers.view(&view.id, now);
        // A rest that ended is not shown.
        view.pressure = self.pressure.view(&view.id).map(|mut p| {
            if p.resting_until.is_some_and(|until| until <= rested) {
                (p.resting_until, p.reason) = (None, None);
            }
            p
        });
        view.health = self.health.snapshot(&view.id, now, breaker).or_else(|| {
            (breaker != perpetuo_types::BreakerState::Closed).then_some(perpetuo_types::ProviderHealth {
                calls: 0,
                errors: 0,
                p50_ms: None,
                p95_ms: None,
                last_success_at: None,
                last_error: None,
                breaker,
            })
        });
    }

    /// The caches that follow database changes (see `live`).
    pub fn followers(&self) -> Vec<Arc<dyn Follower>> {
        vec![
            self.keys.follower(),
            self.providers.follower(),
            self.budgets.follower(),
            self.captures.follower(),
            self.limits.follower(),
            self.pressure.follower(),
        ]
    }
}

impl AppState {
    /// The state around its services (the binary's start-up builds them).
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}
