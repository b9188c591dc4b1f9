//! Serving one gateway call: the body checked into a request, the records' room checked, prices,
//! route and candidates found, the budget reserved, the call's context built once, and the
//! attempts run. A call refused before any attempt is answered and recorded here.
//!
//! The call runs as a task of its own, apart from the client's connection: a client that leaves
//! does not cancel it. Before an attempt reaches a provider, the call ends at once (recorded as the
//! client's, `499`, nothing held); once one has, the answer is read to its end and recorded at what
//! the provider billed.

use std::sync::Arc;

use axum::response::Response;

use perpetuo_core::AppState;
use perpetuo_core::limits::Need;
use perpetuo_core::protocols::{AnswerLabels, Bound, ClientRequest, Protocol};
use perpetuo_core::usage::TokenCounts;

use super::call::{Call, OpenAiJson};
use super::caller::Caller;
use super::error::GatewayError;
use super::record::{Progress, Subject};
use super::routing::{Route, candidates};
use super::{answer, attempts, budget, limits};

/// Runs the call as its own task and answers with what it returns; dropping this future (the
/// client left) tells the call so, and it goes on without it.
pub async fn serve(
    state: AppState,
    caller: Caller,
    protocol: Protocol,
    forward: Vec<(http::HeaderName, http::HeaderValue)>,
    body: Result<OpenAiJson, GatewayError>,
) -> Response {
    let gone = caller.gone.clone().drop_guard();
    let witness = caller.clone();
    let call = std::panic::AssertUnwindSafe(run(state.clone(), caller, protocol, forward, body));
    let tasks = state.calls.clone();
    let task = tasks.spawn(async move {
        match futures::FutureExt::catch_unwind(call).await {
            Ok(response) => response,
            // The call panicked: what it held is given back by its guards (a budget hold is
            // charged its worst case by the sweeper); the call still gets its one record (whether
            // or not its client is still there), and the client an opaque 500.
            Err(_) => {
                tracing::error!(request_id = %witness.request_id, "a gateway call panicked");
                let error = GatewayError::Internal(perpetuo_core::ServiceError::Internal("the call panicked".into()));
                if witness.recorded.load(std::sync::atomic::Ordering::Acquire) {
                    return error.response_for(protocol);
                }
                let subject = Subject::bare(&witness, protocol, "", false);
                answer::failure(&state, &subject, None, error, &Progress::default())
            }
        }
    });
    let answer = task.await;
    // The client is still there: the call's answer (a stream's relay) watches it from now on.
    gone.disarm();
    answer.unwrap_or_else(|e| {
        // Cancelled with the runtime (the server is stopping).
        tracing::warn!(error = %e, "a gateway call's task ended without an answer");
        GatewayError::Internal(perpetuo_core::ServiceError::Unavailable).response_for(protocol)
    })
}

/// Builds the call and runs it; a call refused before any attempt is answered and recorded.
async fn run(
    state: AppState,
    caller: Caller,
    protocol: Protocol,
    forward: Vec<(http::HeaderName, http::HeaderValue)>,
    body: Result<OpenAiJson, GatewayError>,
) -> Response {
    let request = match body.and_then(|OpenAiJson(value)| Ok(ClientRequest::parse(protocol, value)?)) {
        Ok(request) => request,
        Err(error) => {
            let subject = Subject::bare(&caller, protocol, "", false);
            return answer::failure(&state, &subject, None, error, &Progress::default());
        }
    };
    if let Some(error) = ledger_refusal(&state) {
        // Every answered call must have its record: none is made while records cannot be kept.
        let subject = Subject::bare(&caller, protocol, &request.model, request.stream);
        return answer::failure(&state, &subject, None, error, &Progress::default());
    }
    let prices = match state.prices().overrides(&caller.key.workspace).await {
        Ok(prices) => prices,
        Err(e) => {
            // Prices only change the cost estimate: the call goes on with the table's.
            e.log_if_internal();
            Arc::default()
        }
    };
    let route = Route::parse(&request.model);
    let labels = AnswerLabels {
        id: caller.request_id.trim_start_matches("req_").to_owned(),
        model: request.model.clone(),
        created: caller.ts / 1000,
        include_usage: request.include_usage,
        max_kept_bytes: state.settings.upstream.max_answer_bytes,
    };
    let subject = Subject::bare(&caller, protocol, &request.model, request.stream);
    let providers = match state.providers().enabled(&caller.key.workspace).await {
        Ok(providers) => providers,
        Err(e) => return answer::failure(&state, &subject, None, GatewayError::Internal(e), &Progress::default()),
    };
    let mut candidates = candidates(&providers, &route, protocol);
    if candidates.is_empty() {
        let error = GatewayError::ModelNotFound(request.model.clone());
        return answer::failure(&state, &subject, None, error, &Progress::default());
    }
    let default = state.settings.budget_default_max_tokens;
    let worst_output = request.output.total(default);
    // Token and in-flight limits first: a call that waits for room holds no budget meanwhile.
    let prompt = budget::PromptCeiling::new(&state, caller.key.workspace.as_str(), &request.body);
    let estimate = async || Need { input: prompt.get().await, output: worst_output };
    let admitted = limits::admit_call(&state, &caller.key.workspace, &caller.key.id, estimate);
    // A client that leaves while its call waits for room ends the wait (nothing is held yet).
    let admitted = match tokio::select! {
        admitted = admitted => admitted,
        () = caller.gone.cancelled() => Err(GatewayError::ClientGone),
    } {
        Ok(admitted) => admitted,
        Err(error) => return answer::failure(&state, &subject, None, error, &Progress::default()),
    };
    let hold = match budget::reserve(&state, &caller, &request, &mut candidates, &prices, worst_output, &prompt).await {
        Ok(hold) => hold,
        Err(error) => {
            if let Some((admitted, _)) = &admitted {
                limits::settle(&state, admitted, TokenCounts::default());
            }
            return answer::failure(&state, &subject, None, error, &Progress::default());
        }
    };
    // Under a budget the provider must not write more than was reserved, even when the client
    // named no bound.
    let bound = Bound {
        per_choice: request.output.per_choice(default),
        inject: hold.is_some() && request.output.asked.is_none(),
    };
    let capture = state.captures().plan(&caller.key.workspace, caller.key.capture, &caller.request_id).await;
    let known_prompt = prompt.known();
    let mut call = Call::new(caller, request, candidates, prices, labels, forward, hold, bound, worst_output);
    call.capture = capture;
    if let Some(prompt) = known_prompt {
        call.knows_prompt(prompt);
    }
    if let Some((admitted, _)) = admitted {
        call.holdings.limits.call = Some(admitted);
    }
    attempts::run(&state, call).await
}

/// Why no call can be made now: records cannot be kept (the spool is full, or its disk failed).
pub fn ledger_refusal(state: &AppState) -> Option<GatewayError> {
    if state.usage.is_failing() {
        Some(GatewayError::UsageLedgerUnavailable)
    } else if state.usage.is_full() {
        Some(GatewayError::UsageLedgerFull)
    } else {
        None
    }
}
