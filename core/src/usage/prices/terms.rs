//! Each provider kind's usual billing terms, where a price table says nothing.

use perpetuo_types::ProviderKind;

/// A kind's usual billing terms where a price table says nothing: what a cache read and cache
/// writes cost as shares of input, what a hosted web search costs, and whose list prices its
/// models are billed at. One entry per kind, checked by the compiler.
pub(super) struct Terms {
    pub read: f64,
    pub write: f64,
    pub write_1h: f64,
    pub search_nanos: i64,
    /// The vendor whose table prices its models when it has none of its own.
    pub bills_as: Option<ProviderKind>,
}

impl Terms {
    /// No discount assumed, no search fee.
    const PLAIN: Self = Self { read: 1.0, write: 1.0, write_1h: 1.0, search_nanos: 0, bills_as: None };

    /// The terms of the kind named `kind` (the plain ones for a name no kind has).
    pub fn of(kind: &str) -> Self {
        ProviderKind::parse(kind).map_or(Self::PLAIN, Self::for_kind)
    }

    fn for_kind(kind: ProviderKind) -> Self {
        match kind {
            // Reads at 0.1x, writes at 1.25x input (2x for an hour); $10 per 1,000 searches.
            ProviderKind::Anthropic => {
                Self { read: 0.1, write: 1.25, write_1h: 2.0, search_nanos: 10_000_000, ..Self::PLAIN }
            }
            ProviderKind::Openai => Self { read: 0.5, ..Self::PLAIN },
            ProviderKind::Gemini | ProviderKind::Deepseek => Self { read: 0.25, ..Self::PLAIN },
            // Azure OpenAI bills OpenAI's models at OpenAI's list prices (a deployment named after
            // its model finds its price; another name needs a workspace price), Vertex AI and
            // Bedrock bill Claude at Anthropic's (Vertex's `model@version` ids are Anthropic's
            // `model-version`), Vertex AI's Gemini at Gemini's.
            ProviderKind::Azure => Self { bills_as: Some(ProviderKind::Openai), ..Self::PLAIN },
            ProviderKind::Vertex | ProviderKind::Bedrock => {
                Self { bills_as: Some(ProviderKind::Anthropic), ..Self::PLAIN }
            }
            ProviderKind::VertexGemini => Self { bills_as: Some(ProviderKind::Gemini), ..Self::PLAIN },
            ProviderKind::Groq
            | ProviderKind::Mistral
            | ProviderKind::Openrouter
            | ProviderKind::Together
            | ProviderKind::Xai
            | ProviderKind::BedrockConverse
            | ProviderKind::OpenaiCompatible => Self::PLAIN,
        }
    }
}
