//! The vendor tables of each provider kind: its default base URL, the model families it serves
//! without an allow-list, whether it offers embeddings, and the dialect it speaks. Server-only:
//! the browser never needs them (they stay out of the WebAssembly build).

use super::dialects::Dialect;
use super::dialects::anthropic::Anthropic;
use super::dialects::azure::Azure;
use super::dialects::bedrock::converse::Converse;
use super::dialects::bedrock::{self, Bedrock};
use super::dialects::gemini::{self, Gemini};
use super::dialects::openai::OpenAi;
use super::dialects::vertex::{self, Vertex, VertexGemini};
use crate::protocols::Protocol;
use perpetuo_types::ProviderKind;

/// The vendor's base URL, following its SDK's convention: OpenAI-style kinds include the
/// version (the gateway appends `/chat/completions`); Anthropic's does not (`/v1/messages`).
pub fn default_base_url(kind: ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::Openai => Some("https://api.openai.com/v1"),
        ProviderKind::Anthropic => Some("https://api.anthropic.com"),
        ProviderKind::Gemini => Some(gemini::ROOT),
        ProviderKind::Groq => Some("https://api.groq.com/openai/v1"),
        ProviderKind::Mistral => Some("https://api.mistral.ai/v1"),
        ProviderKind::Deepseek => Some("https://api.deepseek.com/v1"),
        ProviderKind::Openrouter => Some("https://openrouter.ai/api/v1"),
        ProviderKind::Together => Some("https://api.together.xyz/v1"),
        ProviderKind::Xai => Some("https://api.x.ai/v1"),
        // The resource's own endpoint, `https://RESOURCE.openai.azure.com`.
        ProviderKind::Azure | ProviderKind::OpenaiCompatible => None,
        // The global host; a region other than `global` picks its regional host.
        ProviderKind::Vertex | ProviderKind::VertexGemini => Some(vertex::GLOBAL_HOST),
        // The default region's; another region picks its own host.
        ProviderKind::Bedrock | ProviderKind::BedrockConverse => Some(bedrock::DEFAULT_HOST),
    }
}

/// Whether the vendor offers `/embeddings`.
pub fn offers_embeddings(kind: ProviderKind) -> bool {
    matches!(
        kind,
        ProviderKind::Openai
            | ProviderKind::Gemini
            | ProviderKind::Mistral
            | ProviderKind::Together
            | ProviderKind::OpenaiCompatible
            | ProviderKind::Openrouter
            | ProviderKind::Azure
    )
}

/// Whether a provider of this kind speaks a client protocol natively (its calls are passed
/// through untouched); any other protocol but embeddings reaches it translated, through chat.
pub fn speaks(kind: ProviderKind, protocol: Protocol) -> bool {
    match protocol {
        // Gemini's own API is translated from chat like the others.
        Protocol::Chat => {
            !speaks_messages(kind)
                && !matches!(kind, ProviderKind::Gemini | ProviderKind::VertexGemini | ProviderKind::BedrockConverse)
        }
        Protocol::Embeddings => offers_embeddings(kind),
        Protocol::Messages => speaks_messages(kind),
        // OpenAI and Azure OpenAI serve it; the compatible hosts' support varies, so they get chat.
        Protocol::Responses => matches!(kind, ProviderKind::Openai | ProviderKind::Azure),
    }
}

/// Kinds whose native protocol is Anthropic's Messages (Anthropic, Claude on Vertex AI and on
/// Amazon Bedrock).
fn speaks_messages(kind: ProviderKind) -> bool {
    matches!(kind, ProviderKind::Anthropic | ProviderKind::Vertex | ProviderKind::Bedrock)
}

/// Whether a provider of this kind can serve a client protocol at all (natively or translated).
pub fn serves(kind: ProviderKind, protocol: Protocol) -> bool {
    match protocol {
        Protocol::Embeddings => offers_embeddings(kind),
        Protocol::Chat | Protocol::Messages | Protocol::Responses => true,
    }
}

/// Whether a provider of this kind without an allow-list serves `model`, by the vendor's
/// model families.
pub fn serves_family(kind: ProviderKind, model: &str) -> bool {
    let m = model.to_ascii_lowercase();
    let starts = |prefixes: &[&str]| prefixes.iter().any(|p| m.starts_with(p));
    match kind {
        // Azure deployments are often named after their model; others need the allow-list.
        ProviderKind::Openai | ProviderKind::Azure => starts(&[
            "gpt-",
            "o1",
            "o3",
            "o4",
            "chatgpt-",
            "text-embedding-",
            "davinci",
            "babbage",
            "omni-moderation",
            "codex-",
        ]),
        ProviderKind::Anthropic | ProviderKind::Vertex => starts(&["claude-"]),
        ProviderKind::Gemini => starts(&["gemini-", "gemma-", "text-embedding-004", "embedding-"]),
        ProviderKind::VertexGemini => starts(&["gemini-"]),
        // `anthropic.claude-…`, or an inference profile's `us.anthropic.claude-…`.
        ProviderKind::Bedrock => m.contains("anthropic.claude-"),
        // Bedrock's model ids name their vendor (`amazon.nova-lite-v1:0`, `us.meta.llama…`).
        ProviderKind::BedrockConverse => [
            "amazon.nova",
            "meta.llama",
            "mistral.",
            "cohere.command",
            "deepseek.",
            "openai.gpt-oss",
            "qwen.",
            "anthropic.claude-",
        ]
        .iter()
        .any(|vendor| m.contains(vendor)),
        ProviderKind::Groq => starts(&[
            "llama",
            "mixtral",
            "gemma2",
            "qwen",
            "deepseek-r1-distill",
            "compound",
            "openai/gpt-oss",
            "meta-llama/",
            "moonshotai/",
        ]),
        ProviderKind::Mistral => starts(&[
            "mistral-",
            "open-mistral",
            "open-mixtral",
            "codestral",
            "pixtral",
            "ministral",
            "magistral",
            "devstral",
        ]),
        ProviderKind::Deepseek => starts(&["deepseek-"]),
        ProviderKind::Xai => starts(&["grok-"]),
        // Both name models `vendor/model`.
        ProviderKind::Openrouter | ProviderKind::Together => m.contains('/'),
        ProviderKind::OpenaiCompatible => true,
    }
}

/// The upstream dialect a kind speaks: the one registration line per kind.
pub fn dialect(kind: ProviderKind) -> &'static dyn Dialect {
    match kind {
        ProviderKind::Anthropic => &Anthropic,
        ProviderKind::Openai => &OpenAi::OPENAI,
        ProviderKind::Gemini => &Gemini,
        ProviderKind::Groq
        | ProviderKind::Mistral
        | ProviderKind::Deepseek
        | ProviderKind::Openrouter
        | ProviderKind::Together
        | ProviderKind::Xai
        | ProviderKind::OpenaiCompatible => &OpenAi::COMPATIBLE,
        ProviderKind::Azure => &Azure,
        ProviderKind::Vertex => &Vertex,
        ProviderKind::VertexGemini => &VertexGemini,
        ProviderKind::Bedrock => &Bedrock,
        ProviderKind::BedrockConverse => &Converse,
    }
}
