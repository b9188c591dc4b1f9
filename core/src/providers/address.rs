//! Where provider calls may go: which addresses are public, the rules for base URLs, and the
//! resolver that refuses private answers at connect time (which defeats DNS rebinding), with plain
//! words for a failure to connect.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::platform::error::ServiceError;
/// Whether an address is reachable on the public internet (not loopback, private, link-local,
/// metadata, carrier-grade NAT, multicast, documentation or unspecified).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local (incl. fd00:ec2::254 metadata)
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated, still routable inside)
                || first == 0x2002 // 6to4: embeds an IPv4 address that may be private
                || (first == 0x2001 && v6.segments()[1] == 0) // Teredo
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || (first == 0x0064 && v6.segments()[1] == 0xff9b) // NAT64 can reach private v4
                || v6.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible
        }
    }
}

/// Link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10, fd00:ec2::254), also when
/// an IPv6 address carries one inside it (IPv4-mapped or -compatible, NAT64, 6to4, Teredo): never
/// an LLM provider, and where a cloud machine's credentials live. Refused even when private
/// upstreams are allowed.
pub fn is_never_allowed(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6 == std::net::Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)
                || embedded_v4(v6).iter().any(Ipv4Addr::is_link_local)
        }
    }
}

/// The IPv4 addresses an IPv6 address can lead to: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::/96` and the local-use `64:ff9b:1::/48`), 6to4
/// (`2002:aabb:ccdd::/48`) and Teredo (`2001:0::/32`: its server, and its client XOR-ed).
fn embedded_v4(v6: std::net::Ipv6Addr) -> Vec<Ipv4Addr> {
    let s = v6.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let mut found = Vec::new();
    if let Some(mapped) = v6.to_ipv4_mapped() {
        found.push(mapped);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        found.push(v4(s[6], s[7]));
    }
    if s[0] == 0x0064 && s[1] == 0xff9b {
        found.push(v4(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        found.push(v4(s[1], s[2]));
    }
    if s[0] == 0x2001 && s[1] == 0 {
        found.push(v4(s[2], s[3]));
        found.push(v4(!s[6], !s[7]));
    }
    found
}

fn is_public_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    !(v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240)
}

/// A resolver that refuses names with a link-local or metadata answer, and, unless private
/// upstreams are allowed, any non-public answer.
#[derive(Debug, Clone, Default)]
pub(super) struct GuardedResolver {
    pub allow_private: bool,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn resolve_guarded(host: String, allow_private: bool) -> Result<Addrs, BoxError> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
    if addrs.is_empty() {
        return Err(format!("{host} did not resolve").into());
    }
    if addrs.iter().any(|a| is_never_allowed(a.ip())) {
        return Err(format!("{host} resolves to a link-local or metadata address, which is never allowed").into());
    }
    if !allow_private && addrs.iter().any(|a| !is_public(a.ip())) {
        return Err(format!("{host} resolves to a private or local address, which is not allowed").into());
    }
    Ok(Box::new(addrs.into_iter()))
}

async fn resolve_public(host: String) -> Result<Addrs, BoxError> {
    resolve_guarded(host, false).await
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(resolve_guarded(name.as_str().to_owned(), self.allow_private))
    }
}

/// The guarded resolver as hyper's connector asks for names.
#[derive(Debug, Clone)]
pub(super) struct GuardedDns {
    pub allow_private: bool,
}

impl tower_service::Service<hyper_util::client::legacy::connect::dns::Name> for GuardedDns {
    type Response = Addrs;
    type Error = BoxError;
    type Future = Resolving;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), BoxError>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: hyper_util::client::legacy::connect::dns::Name) -> Resolving {
        Box::pin(resolve_guarded(name.as_str().to_owned(), self.allow_private))
    }
}

/// A provider base URL: http(s), no credentials, query or fragment, no trailing slash; `https`
/// and a public host unless private upstreams are allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    pub fn parse(raw: &str, allow_private: bool) -> Result<Self, ServiceError> {
        let invalid = |why: &str| ServiceError::Invalid(format!("Base URL {why}."));
        let trimmed = raw.trim().trim_end_matches('/');
        if trimmed.len() > 2048 {
            return Err(invalid("is too long"));
        }
        let url =
            url::Url::parse(trimmed).map_err(|_| invalid("must be a full URL such as https://api.example.com/v1"))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_private => {}
            "http" => {
                return Err(invalid("must use https (plain http is only allowed when ALLOW_PRIVATE_UPSTREAMS=true)"));
            }
            _ => return Err(invalid("must start with https://")),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("must not contain a user name or password; put the key in the API key field"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must not have a query string or fragment"));
        }
        let host = url.host().ok_or_else(|| invalid("needs a host"))?;
        let literal_ip = match host {
            url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
            url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
            url::Host::Domain(_) => None,
        };
        if literal_ip.is_some_and(is_never_allowed) {
            return Err(invalid(
                "points at a link-local or cloud metadata address, which is not allowed (not even with ALLOW_PRIVATE_UPSTREAMS=true)",
            ));
        }
        if !allow_private {
            let literal = match host {
                url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
                url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
                url::Host::Domain(d) => {
                    // `localhost.` is `localhost`: a trailing dot must not slip past the name check.
                    let d = d.trim_end_matches('.').to_ascii_lowercase();
                    if d == "localhost"
                        || d.ends_with(".localhost")
                        || d.ends_with(".internal")
                        || d.ends_with(".local")
                    {
                        return Err(invalid(
                            "points at a local host, which is not allowed (set ALLOW_PRIVATE_UPSTREAMS=true for self-hosted models)",
                        ));
                    }
                    None
                }
            };
            if let Some(ip) = literal
                && !is_public(ip)
            {
                return Err(invalid(
                    "points at a private or local address, which is not allowed (set ALLOW_PRIVATE_UPSTREAMS=true for self-hosted models)",
                ));
            }
        }
        Ok(Self(url.as_str().trim_end_matches('/').to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Resolves the host now and refuses private answers (the connect-time check repeats this).
    pub async fn check_resolves_public(&self) -> Result<(), ServiceError> {
        let url = url::Url::parse(&self.0).map_err(|_| ServiceError::Invalid("Base URL is malformed.".into()))?;
        if let Some(url::Host::Domain(domain)) = url.host() {
            match resolve_public(domain.to_owned()).await {
                Ok(_) => {}
                Err(e) if e.to_string().contains("private or local") => {
                    return Err(ServiceError::Invalid(format!(
                        "Base URL host {domain} resolves to a private or local address, which is not allowed (set ALLOW_PRIVATE_UPSTREAMS=true for self-hosted models)."
                    )));
                }
                // Unresolvable now may be temporary; the connect-time check still applies.
                Err(_) => {}
            }
        }
        Ok(())
    }
}

/// Plain words for a failure to reach a provider; never includes the URL's secrets (there are none).
pub fn describe_transport_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "The provider did not answer in time.".to_owned()
    } else if e.is_connect() {
        let mut source: Option<&dyn std::error::Error> = Some(e);
        while let Some(s) = source {
            if s.to_string().contains("private or local") {
                return "The provider's host resolves to a private or local address, which is not allowed.".to_owned();
            }
            source = s.source();
        }
        "Could not connect to the provider (check the base URL).".to_owned()
    } else {
        "The connection to the provider failed.".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_addresses_are_refused_in_every_ipv6_disguise() {
        for disguised in [
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "::169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
            "2001:0:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:5601:5601",
            "fe80::1",
            "fd00:ec2::254",
        ] {
            let ip: IpAddr = disguised.parse().unwrap();
            assert!(is_never_allowed(ip), "{disguised}");
        }
        for fine in ["10.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::1", "2606:4700::1111"] {
            let ip: IpAddr = fine.parse().unwrap();
            assert!(!is_never_allowed(ip), "{fine}");
        }
    }

    #[test]
    fn private_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fec0::1",
            "2002:7f00:1::1",
            "2001:0:4136:e378::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} counted as public");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "104.18.0.1"] {
            assert!(is_public(ip.parse().unwrap()), "{ip} counted as private");
        }
    }

    #[test]
    fn base_url_rules() {
        assert_eq!(BaseUrl::parse("https://api.openai.com/v1/", false).unwrap().as_str(), "https://api.openai.com/v1");
        for bad in [
            "http://api.example.com/v1",
            "https://127.0.0.1/v1",
            "https://[::1]/v1",
            "https://169.254.169.254/latest",
            "https://localhost:8080/v1",
            "https://user:pw@api.example.com/v1",
            "https://api.example.com/v1?key=x",
            "ftp://api.example.com",
            "not a url",
        ] {
            assert!(BaseUrl::parse(bad, false).is_err(), "accepted {bad}");
        }
        assert!(BaseUrl::parse("http://127.0.0.1:11434/v1", true).is_ok());
        for metadata in [
            "http://169.254.169.254/latest",
            "http://[fd00:ec2::254]/",
            "http://[fe80::1]/v1",
            "http://[::ffff:169.254.1.1]/",
        ] {
            assert!(BaseUrl::parse(metadata, true).is_err(), "allowed {metadata} with private upstreams on");
        }
        assert!(is_never_allowed("169.254.0.1".parse().unwrap()) && !is_never_allowed("10.0.0.1".parse().unwrap()));
        assert!(BaseUrl::parse("ftp://127.0.0.1", true).is_err());
    }

    #[tokio::test]
    async fn resolver_refuses_local_names() {
        assert!(resolve_public("localhost".into()).await.is_err());
    }
}
