//! Which providers may serve a call, in priority order, and the model each is asked for. A name
//! that a provider has as an alias (exact, else the longest matching `prefix*`) goes to the
//! providers with that alias, each asked for its own model; otherwise `kind/model` names a kind
//! and the bare model, and a plain model goes to the providers that list it, or whose kind's
//! families include it.

use perpetuo_core::protocols::Protocol;
use perpetuo_core::providers::{OpenedProvider, catalog};

/// A provider that may serve the call, and the model it is asked for.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub provider: OpenedProvider,
    pub model: String,
}
use perpetuo_types::ProviderKind;

/// A model name as routing reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The kind a `kind/model` name asks for.
    pub kind: Option<ProviderKind>,
    /// The model sent upstream (and priced).
    pub bare: String,
    /// The model as the client wrote it.
    pub full: String,
}

impl Route {
    /// `kind/model` names a provider kind and the bare model; anything else is just a model.
    pub fn parse(model: &str) -> Self {
        if let Some((prefix, rest)) = model.split_once('/')
            && let Ok(kind) = ProviderKind::parse(prefix)
            && !rest.is_empty()
        {
            return Self { kind: Some(kind), bare: rest.to_owned(), full: model.to_owned() };
        }
        Self { kind: None, bare: model.to_owned(), full: model.to_owned() }
    }
}

/// The providers that may serve `route` for `protocol`, in priority order.
pub fn candidates(providers: &[OpenedProvider], route: &Route, protocol: Protocol) -> Vec<Candidate> {
    let serving = || providers.iter().filter(|p| p.enabled && catalog::serves(p.kind, protocol));
    if let Some(aliased) = by_alias(serving(), &route.full) {
        return aliased;
    }
    // `kind/model`: that kind's aliases apply to the bare model, as they do to a plain name.
    if let Some(kind) = route.kind
        && let Some(aliased) = by_alias(serving().filter(|p| p.kind == kind), &route.bare)
    {
        return aliased;
    }
    serving()
        .filter(|p| route.kind.is_none_or(|k| p.kind == k))
        .filter(|p| match &p.models {
            Some(allowed) => allowed.iter().any(|m| *m == route.bare || *m == route.full),
            // Naming the kind explicitly routes any model to it.
            None => route.kind.is_some() || catalog::serves_family(p.kind, &route.bare),
        })
        .map(|provider| Candidate { provider: provider.clone(), model: route.bare.clone() })
        .collect()
}

/// The providers with the best alias match for `name` (exact, else the longest prefix), each with
/// its own model; `None` when none has an alias for it.
fn by_alias<'a>(providers: impl Iterator<Item = &'a OpenedProvider>, name: &str) -> Option<Vec<Candidate>> {
    let aliased: Vec<_> = providers.filter_map(|p| p.alias(name).map(|(how, model)| (how, p, model))).collect();
    let best = aliased.iter().map(|(how, ..)| *how).max()?;
    Some(
        aliased
            .into_iter()
            .filter(|(how, ..)| *how == best)
            .map(|(_, provider, model)| Candidate { provider: provider.clone(), model: model.to_owned() })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use perpetuo_core::platform::secret::SecretBytes;

    fn provider(id: &str, kind: ProviderKind, models: Option<Vec<&str>>, priority: i64) -> OpenedProvider {
        OpenedProvider {
            id: id.into(),
            label: id.into(),
            kind,
            base_url: "https://example.com".into(),
            key: SecretBytes::new(b"k".to_vec()),
            priority,
            enabled: true,
            models: models.map(|m| m.into_iter().map(str::to_owned).collect()),
            aliases: Default::default(),
            translation: Default::default(),
            api_version: None,
            region: None,
            project: None,
            tokens: None,
            signer: None,
            auth: Vec::new().into(),
        }
    }

    fn ids(providers: &[OpenedProvider], model: &str, protocol: Protocol) -> Vec<String> {
        candidates(providers, &Route::parse(model), protocol).into_iter().map(|c| c.provider.id).collect()
    }

    #[test]
    fn aliases_route_to_their_providers_and_models() {
        let mut local = provider("local", ProviderKind::OpenaiCompatible, None, 1);
        local.aliases.insert("claude-sonnet-*".into(), "qwen-coder".into());
        local.aliases.insert("claude-sonnet-4-5".into(), "qwen-big".into());
        let mut oa = provider("oa", ProviderKind::Openai, None, 2);
        oa.aliases.insert("claude-*".into(), "gpt-4o".into());
        let an = provider("an", ProviderKind::Anthropic, None, 3);
        let providers = vec![local, oa, an];
        let served = |model: &str| -> Vec<(String, String)> {
            candidates(&providers, &Route::parse(model), Protocol::Messages)
                .into_iter()
                .map(|c| (c.provider.id, c.model))
                .collect()
        };
        assert_eq!(served("claude-sonnet-4-5"), [("local".into(), "qwen-big".into())], "exact beats any prefix");
        assert_eq!(served("claude-sonnet-4-6"), [("local".into(), "qwen-coder".into())], "the longest prefix wins");
        assert_eq!(served("claude-haiku-4-5"), [("oa".into(), "gpt-4o".into())]);
        assert_eq!(served("gpt-4o").len(), 2, "names without an alias route as before");
        // `kind/model`: the kind's aliases apply to the bare model (Azure's deployments, say).
        assert_eq!(served("openai_compatible/claude-sonnet-4-5"), [("local".into(), "qwen-big".into())]);
        assert_eq!(served("openai/claude-opus-4"), [("oa".into(), "gpt-4o".into())]);
        assert_eq!(ids(&providers, "anthropic/claude-x", Protocol::Messages), ["an"]);
    }

    #[test]
    fn routing_by_kind_prefix_family_and_allow_list() {
        let providers = vec![
            provider("oa", ProviderKind::Openai, None, 1),
            provider("an", ProviderKind::Anthropic, None, 2),
            provider("local", ProviderKind::OpenaiCompatible, None, 3),
            provider("limited", ProviderKind::Openai, Some(vec!["gpt-4o-mini"]), 4),
        ];
        assert_eq!(ids(&providers, "gpt-4o", Protocol::Chat), vec!["oa", "local"]);
        assert_eq!(ids(&providers, "anthropic/claude-3-5-haiku", Protocol::Chat), vec!["an"]);
        assert_eq!(Route::parse("anthropic/claude-3-5-haiku").bare, "claude-3-5-haiku");
        assert_eq!(ids(&providers, "claude-3-5-haiku", Protocol::Chat), vec!["an", "local"]);
        assert_eq!(ids(&providers, "gpt-4o-mini", Protocol::Chat), vec!["oa", "local", "limited"]);
        assert_eq!(
            ids(&providers, "openai/some-new-model", Protocol::Chat),
            vec!["oa"],
            "the allow-list still applies under a kind prefix"
        );
        assert_eq!(ids(&providers, "text-embedding-3-small", Protocol::Embeddings), vec!["oa", "local"]);
        let anthropic_only = [provider("an", ProviderKind::Anthropic, None, 1)];
        assert!(ids(&anthropic_only, "mystery", Protocol::Chat).is_empty());
        let route = Route::parse("openrouter/openai/gpt-4o");
        assert_eq!((route.kind, route.bare.as_str()), (Some(ProviderKind::Openrouter), "openai/gpt-4o"));
        let route = Route::parse("meta-llama/llama-3");
        assert_eq!((route.kind, route.bare.as_str()), (None, "meta-llama/llama-3"));
    }
}
