//! Which client a request comes from: the peer, or the nearest untrusted hop a trusted proxy
//! names in `Forwarded` / `X-Forwarded-For`.

use std::net::IpAddr;

use ipnet::IpNet;

/// The client address the IP limit was applied to, put in the request's extensions for the
/// handlers (login limits, logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

pub(super) fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    };
    trusted.iter().any(|net| net.contains(&ip))
}

/// See [`Limiters::client_ip`]. `Forwarded` (RFC 7239) wins over `X-Forwarded-For` when present.
pub fn client_ip(peer: IpAddr, headers: &http::HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let forwarded: Vec<&str> = headers
        .get_all(http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|element| {
            element.split(';').map(str::trim).find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim().eq_ignore_ascii_case("for").then_some(value.trim())
            })
        })
        .collect();
    let hops: Vec<&str> = if forwarded.is_empty() {
        headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    } else {
        forwarded
    };
    let mut nearest = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) if is_trusted(ip, trusted) => nearest = ip,
            Some(ip) => return ip,
            // Garbage where an address should be: the hop that wrote it is the last one we trust.
            None => return nearest,
        }
    }
    nearest
}

/// An address from an `X-Forwarded-For` item or a `Forwarded` `for=` value (quoted, bracketed,
/// with or without a port).
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let value = raw.trim().trim_matches('"');
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    if let Ok(addr) = value.parse::<std::net::SocketAddr>() {
        return Some(addr.ip());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for (k, v) in pairs {
            map.append(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        map
    }

    #[test]
    fn forwarded_headers_only_count_from_trusted_peers() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        let spoof = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(client_ip(peer, &spoof, &trusted), peer, "untrusted peer: header ignored");
        assert_eq!(client_ip(peer, &spoof, &[]), peer);

        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.4, 10.0.0.5")]);
        assert_eq!(
            client_ip(proxy, &chain, &trusted),
            "198.51.100.4".parse::<IpAddr>().unwrap(),
            "right-most untrusted"
        );
        let split = headers(&[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-for", "198.51.100.4")]);
        assert_eq!(client_ip(proxy, &split, &trusted), "198.51.100.4".parse::<IpAddr>().unwrap());
        let rfc = headers(&[("forwarded", "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\"")]);
        assert_eq!(client_ip(proxy, &rfc, &trusted), "2001:db8::1".parse::<IpAddr>().unwrap());
        let garbage = headers(&[("x-forwarded-for", "6.6.6.6, unknown")]);
        assert_eq!(client_ip(proxy, &garbage, &trusted), proxy);
        assert_eq!(client_ip(proxy, &http::HeaderMap::new(), &trusted), proxy);
    }
}
