//! What the gateway hands body capture, when the call's plan says it is captured: the request as
//! the client sent it and its answer: whole, a stream as the client got it, or the error it was
//! told. Cutting, redacting, sealing and writing happen in the capture service, off the call.

use perpetuo_core::AppState;
use perpetuo_core::captures::{Captured, Plan, Raw};

use super::call::Call;
use super::error::GatewayError;

/// The call's request body under its plan's cap, when the call is captured (taken before
/// anything can move the body away).
pub fn request(call: &Call) -> Option<(Plan, Raw)> {
    call.capture.map(|plan| (plan, plan.json(&call.request.body)))
}

/// Hands the call's bodies to the writer.
pub fn keep(state: &AppState, call: &Call, plan: Plan, request: Raw, response: Option<Raw>) {
    state.captures().keep(Captured {
        workspace: call.caller.key.workspace.clone(),
        request_id: call.caller.request_id.clone(),
        key_id: call.caller.key.id.clone(),
        route: call.request.protocol.name(),
        stream: call.request.stream,
        plan,
        request,
        response,
    });
}

/// A whole answer.
pub fn whole(state: &AppState, call: &Call, body: &[u8]) {
    if let Some((plan, request)) = request(call) {
        let mut response = plan.body();
        response.push(body);
        keep(state, call, plan, request, Some(response));
    }
}

/// A call that failed after it was built: the error the client was told.
pub fn failed(state: &AppState, call: &Call, error: &GatewayError) {
    if let Some((plan, request)) = request(call) {
        let body = error.body_for(call.request.protocol);
        keep(state, call, plan, request, Some(plan.json(&body)));
    }
}
