//! What Perpetuo knows about each provider kind on the server, one [`Descriptor`] a kind: its
//! default base URL, the client protocols it speaks natively, whether it offers embeddings, the
//! model families it serves without an allow-list, its dialect, the credential it takes and the
//! settings it has (a region, an API version), and its name in traces. A new
//! kind is its variant in `perpetuo_types::ProviderKind` (name, label, example model), its
//! dialect module (or an existing one), and one entry here. Server-only: the browser never
//! needs them (they stay out of the WebAssembly build).

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

/// A provider kind's server-side facts.
pub struct Descriptor {
    /// The vendor's base URL, following its SDK's convention: OpenAI-style kinds include the
    /// version (the gateway appends `/chat/completions`); Anthropic's does not (`/v1/messages`).
    /// `None`: every account gives its own.
    pub base_url: Option<&'static str>,
    /// The client protocols it speaks natively (their calls pass through untouched); any other
    /// but embeddings reaches it translated, through chat.
    pub native: &'static [Protocol],
    /// Whether the vendor offers `/embeddings`.
    pub embeddings: bool,
    /// The models it serves when the account has no allow-list.
    pub families: Families,
    /// The wire format and host it speaks.
    pub dialect: &'static dyn Dialect,
    /// OpenTelemetry's `gen_ai.provider.name` for it.
    pub otel_name: &'static str,
    /// What its key field holds.
    pub credential: Credential,
    /// Whether an account names a cloud region (Vertex AI's location, Bedrock's region).
    pub region: bool,
    /// Whether an account names an API version (Azure OpenAI's `api-version`).
    pub api_version: bool,
}

/// What a kind's key field holds, and so how it is checked when saved and opened for calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// An API key, sent as the dialect's auth header.
    ApiKey,
    /// An API key, or Entra ID client credentials (JSON) exchanged for bearer tokens (Azure).
    ApiKeyOrEntra,
    /// A service account's JSON key, exchanged for bearer tokens (Vertex AI).
    ServiceAccount,
    /// An API key (a bearer token), or an access key pair that signs each request with SigV4
    /// (Bedrock).
    ApiKeyOrAccessKey,
}

/// Which model names a kind serves without an allow-list (compared in lower case).
pub enum Families {
    /// Names starting with one of these.
    Prefixes(&'static [&'static str]),
    /// Names containing one of these (vendor-qualified ids such as Bedrock's).
    Containing(&'static [&'static str]),
    /// Any name (a host serving whatever it was given).
    Any,
}

impl Families {
    fn serve(&self, model: &str) -> bool {
        let m = model.to_ascii_lowercase();
        match self {
            Self::Prefixes(prefixes) => prefixes.iter().any(|p| m.starts_with(p)),
            Self::Containing(parts) => parts.iter().any(|p| m.contains(p)),
            Self::Any => true,
        }
    }
}

const CHAT: &[Protocol] = &[Protocol::Chat];
const CHAT_AND_EMBEDDINGS: &[Protocol] = &[Protocol::Chat, Protocol::Embeddings];
const MESSAGES: &[Protocol] = &[Protocol::Messages];
const OPENAI_FAMILIES: &[&str] =
    &["gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "davinci", "babbage", "omni-moderation", "codex-"];

/// An OpenAI-compatible vendor at `base_url`: chat passed through, its own families.
const fn compatible(base_url: &'static str, families: Families, otel_name: &'static str) -> Descriptor {
    Descriptor {
        base_url: Some(base_url),
        native: CHAT,
        embeddings: false,
        families,
        dialect: &OpenAi::COMPATIBLE,
        otel_name,
        credential: Credential::ApiKey,
        region: false,
        api_version: false,
    }
}

static OPENAI: Descriptor = Descriptor {
    base_url: Some("https://api.openai.com/v1"),
    native: &[Protocol::Chat, Protocol::Responses, Protocol::Embeddings],
    embeddings: true,
    families: Families::Prefixes(OPENAI_FAMILIES),
    dialect: &OpenAi::OPENAI,
    otel_name: "openai",
    credential: Credential::ApiKey,
    region: false,
    api_version: false,
};

static ANTHROPIC: Descriptor = Descriptor {
    base_url: Some("https://api.anthropic.com"),
    native: MESSAGES,
    embeddings: false,
    families: Families::Prefixes(&["claude-"]),
    dialect: &Anthropic,
    otel_name: "anthropic",
    credential: Credential::ApiKey,
    region: false,
    api_version: false,
};

// Gemini's own API is translated from chat like the others.
static GEMINI: Descriptor = Descriptor {
    base_url: Some(gemini::ROOT),
    native: &[Protocol::Embeddings],
    embeddings: true,
    families: Families::Prefixes(&["gemini-", "gemma-", "text-embedding-004", "embedding-"]),
    dialect: &Gemini,
    otel_name: "gcp.gemini",
    credential: Credential::ApiKey,
    region: false,
    api_version: false,
};

static GROQ: Descriptor = compatible(
    "https://api.groq.com/openai/v1",
    Families::Prefixes(&[
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
    "groq",
);

static MISTRAL: Descriptor = Descriptor {
    embeddings: true,
    native: CHAT_AND_EMBEDDINGS,
    ..compatible(
        "https://api.mistral.ai/v1",
        Families::Prefixes(&[
            "mistral-",
            "open-mistral",
            "open-mixtral",
            "codestral",
            "pixtral",
            "ministral",
            "magistral",
            "devstral",
        ]),
        "mistral_ai",
    )
};

static DEEPSEEK: Descriptor = compatible("https://api.deepseek.com/v1", Families::Prefixes(&["deepseek-"]), "deepseek");

// Both name models `vendor/model`; OpenRouter offers embeddings, Together too.
static OPENROUTER: Descriptor = Descriptor {
    embeddings: true,
    native: CHAT_AND_EMBEDDINGS,
    ..compatible("https://openrouter.ai/api/v1", Families::Containing(&["/"]), "openrouter")
};

static TOGETHER: Descriptor = Descriptor {
    embeddings: true,
    native: CHAT_AND_EMBEDDINGS,
    ..compatible("https://api.together.xyz/v1", Families::Containing(&["/"]), "together")
};

static XAI: Descriptor = compatible("https://api.x.ai/v1", Families::Prefixes(&["grok-"]), "x_ai");

// The resource's own endpoint, `https://RESOURCE.openai.azure.com`; deployments are often
// named after their model (others need the allow-list).
static AZURE: Descriptor = Descriptor {
    base_url: None,
    native: &[Protocol::Chat, Protocol::Responses, Protocol::Embeddings],
    embeddings: true,
    families: Families::Prefixes(OPENAI_FAMILIES),
    dialect: &Azure,
    otel_name: "azure.ai.openai",
    credential: Credential::ApiKeyOrEntra,
    region: false,
    api_version: true,
};

// The global host; a region other than `global` picks its regional host.
static VERTEX: Descriptor = Descriptor {
    base_url: Some(vertex::GLOBAL_HOST),
    native: MESSAGES,
    embeddings: false,
    families: Families::Prefixes(&["claude-"]),
    dialect: &Vertex,
    otel_name: "gcp.vertex_ai",
    credential: Credential::ServiceAccount,
    region: true,
    api_version: false,
};

static VERTEX_GEMINI: Descriptor = Descriptor {
    base_url: Some(vertex::GLOBAL_HOST),
    native: &[],
    embeddings: false,
    families: Families::Prefixes(&["gemini-"]),
    dialect: &VertexGemini,
    otel_name: "gcp.vertex_ai",
    credential: Credential::ServiceAccount,
    region: true,
    api_version: false,
};

// The default region's host; another region picks its own. `anthropic.claude-…`, or an
// inference profile's `us.anthropic.claude-…`.
static BEDROCK: Descriptor = Descriptor {
    base_url: Some(bedrock::DEFAULT_HOST),
    native: MESSAGES,
    embeddings: false,
    families: Families::Containing(&["anthropic.claude-"]),
    dialect: &Bedrock,
    otel_name: "aws.bedrock",
    credential: Credential::ApiKeyOrAccessKey,
    region: true,
    api_version: false,
};

// Bedrock's model ids name their vendor (`amazon.nova-lite-v1:0`, `us.meta.llama…`).
static BEDROCK_CONVERSE: Descriptor = Descriptor {
    base_url: Some(bedrock::DEFAULT_HOST),
    native: &[],
    embeddings: false,
    families: Families::Containing(&[
        "amazon.nova",
        "meta.llama",
        "mistral.",
        "cohere.command",
        "deepseek.",
        "openai.gpt-oss",
        "qwen.",
        "anthropic.claude-",
    ]),
    dialect: &Converse,
    otel_name: "aws.bedrock",
    credential: Credential::ApiKeyOrAccessKey,
    region: true,
    api_version: false,
};

// The compatible hosts' support of Responses varies: they get chat.
static OPENAI_COMPATIBLE: Descriptor = Descriptor {
    base_url: None,
    native: CHAT_AND_EMBEDDINGS,
    embeddings: true,
    families: Families::Any,
    dialect: &OpenAi::COMPATIBLE,
    otel_name: "openai_compatible",
    credential: Credential::ApiKey,
    region: false,
    api_version: false,
};

/// The kind's descriptor: the one entry per kind.
pub fn of(kind: ProviderKind) -> &'static Descriptor {
    match kind {
        ProviderKind::Openai => &OPENAI,
        ProviderKind::Anthropic => &ANTHROPIC,
        ProviderKind::Gemini => &GEMINI,
        ProviderKind::Groq => &GROQ,
        ProviderKind::Mistral => &MISTRAL,
        ProviderKind::Deepseek => &DEEPSEEK,
        ProviderKind::Openrouter => &OPENROUTER,
        ProviderKind::Together => &TOGETHER,
        ProviderKind::Xai => &XAI,
        ProviderKind::Azure => &AZURE,
        ProviderKind::Vertex => &VERTEX,
        ProviderKind::VertexGemini => &VERTEX_GEMINI,
        ProviderKind::Bedrock => &BEDROCK,
        ProviderKind::BedrockConverse => &BEDROCK_CONVERSE,
        ProviderKind::OpenaiCompatible => &OPENAI_COMPATIBLE,
    }
}

/// The vendor's base URL (see [`Descriptor::base_url`]).
pub fn default_base_url(kind: ProviderKind) -> Option<&'static str> {
    of(kind).base_url
}

/// Whether the vendor offers `/embeddings`.
pub fn offers_embeddings(kind: ProviderKind) -> bool {
    of(kind).embeddings
}

/// Whether a provider of this kind speaks a client protocol natively (its calls are passed
/// through untouched); any other protocol but embeddings reaches it translated, through chat.
pub fn speaks(kind: ProviderKind, protocol: Protocol) -> bool {
    of(kind).native.contains(&protocol)
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
    of(kind).families.serve(model)
}

/// The upstream dialect a kind speaks.
pub fn dialect(kind: ProviderKind) -> &'static dyn Dialect {
    of(kind).dialect
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_offering_embeddings_speaks_them_and_no_other_does() {
        for kind in ProviderKind::ALL {
            let d = of(kind);
            assert_eq!(d.embeddings, d.native.contains(&Protocol::Embeddings), "{kind:?}");
            assert!(!d.otel_name.is_empty());
            // A kind speaks Messages or chat natively, never both (one of them is translated).
            assert!(!(d.native.contains(&Protocol::Chat) && d.native.contains(&Protocol::Messages)), "{kind:?}");
        }
    }

    #[test]
    fn families_as_the_vendors_name_their_models() {
        assert!(serves_family(ProviderKind::Openai, "GPT-4o-mini"));
        assert!(!serves_family(ProviderKind::Openai, "claude-haiku-4-5"));
        assert!(serves_family(ProviderKind::BedrockConverse, "us.meta.llama3-3-70b-instruct-v1:0"));
        assert!(serves_family(ProviderKind::Together, "meta-llama/Llama-3.3-70B-Instruct-Turbo"));
        assert!(!serves_family(ProviderKind::Together, "llama-3"));
        assert!(serves_family(ProviderKind::OpenaiCompatible, "anything"));
    }
}
