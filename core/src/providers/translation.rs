//! Where a client protocol meets a provider's dialect: one [`Prepared`] call per candidate. A
//! provider that speaks the client's protocol gets the request passed through (only what must
//! change rewritten, the client's protocol headers forwarded) and its answers read natively; any
//! other gets it translated through chat completions, the pivot, and its answers composed back.
//! The engine holds only the result: a new dialect needs a module and a line in the catalog,
//! nothing here or in the engine.

use std::sync::Arc;

use bytes::Bytes;

use super::OpenedProvider;
use super::catalog;
use super::dialects::{Address, Dialect, Endpoint};
use crate::protocols::chat::Composed;
use crate::protocols::{self, AnswerLabels, AnswerReader, BadAnswer, Bound, ClientRequest, Prepared, Protocol};
use crate::protocols::{Dropped, Refusal, StreamTranslator, ToolNames};
use crate::usage::TokenCounts;

/// The call as `provider` gets it, served as `model` and held to `bound`; `forward` are the
/// client's protocol headers (sent only where the protocol is passed through).
pub fn prepare(
    provider: &OpenedProvider,
    model: &str,
    request: &ClientRequest,
    bound: Bound,
    forward: &[(http::HeaderName, http::HeaderValue)],
) -> Result<Prepared, Refusal> {
    let dialect = catalog::dialect(provider.kind);
    let protocol = request.protocol;
    if catalog::speaks(provider.kind, protocol) {
        let (body, headers) = dialect.native_request(request, model, bound, forward)?;
        return Ok(Prepared {
            url: dialect.url(&Address::of(provider, model).streamed(request.stream), Endpoint::Call(protocol)),
            body,
            headers,
            reader: Box::new(Native { dialect, protocol }),
            dropped: Dropped::default(),
        });
    }
    let (chat, dropped) = protocols::to_chat(request)?;
    if provider.translation.refuse_hosted_tools && !dropped.is_empty() {
        return Err(Refusal::new(
            format!(
                "This model's provider cannot run the hosted tools offered ({}), and its owner chose to refuse such \
                 calls rather than drop the tools.",
                dropped.list()
            ),
            Some("tools"),
        ));
    }
    Ok(Prepared {
        url: dialect.url(&Address::of(provider, model).streamed(request.stream), Endpoint::Call(Protocol::Chat)),
        body: dialect.chat_body(&chat, model, request.stream, bound, provider.translation)?,
        headers: Vec::new(),
        reader: Box::new(ThroughChat { dialect, protocol, names: protocols::tool_names(request) }),
        dropped,
    })
}

/// Answers in the client's own protocol: passed back as they came, their usage read.
struct Native {
    dialect: &'static dyn Dialect,
    protocol: Protocol,
}

impl AnswerReader for Native {
    fn whole(&self, body: Bytes, _: &AnswerLabels) -> Result<(Bytes, TokenCounts), BadAnswer> {
        self.dialect.native_answer(self.protocol, body)
    }

    fn stream(&self, labels: &AnswerLabels) -> Box<dyn StreamTranslator> {
        self.dialect.native_stream(self.protocol, labels)
    }

    fn starts_with_error(&self, first: &Bytes) -> bool {
        self.dialect.starts_with_error(first)
    }
}

/// Answers to a chat body: read as chat by the dialect, written in the client's protocol (tool
/// calls under the names the client offered).
struct ThroughChat {
    dialect: &'static dyn Dialect,
    protocol: Protocol,
    names: Arc<ToolNames>,
}

impl AnswerReader for ThroughChat {
    fn whole(&self, body: Bytes, labels: &AnswerLabels) -> Result<(Bytes, TokenCounts), BadAnswer> {
        let (chat, tokens) = self.dialect.chat_answer(body, labels)?;
        Ok((protocols::answer_from_chat(self.protocol, &chat, labels, tokens, &self.names), tokens))
    }

    fn stream(&self, labels: &AnswerLabels) -> Box<dyn StreamTranslator> {
        let sink = protocols::chat_sink(self.protocol, labels, Arc::clone(&self.names));
        Box::new(Composed::new(self.dialect.chat_source(labels), sink))
    }

    fn starts_with_error(&self, first: &Bytes) -> bool {
        self.dialect.starts_with_error(first)
    }
}
