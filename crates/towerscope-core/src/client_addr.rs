//! The client's address: the peer, or what trusted proxies say it is. Shared by the access
//! log (`client_addr`) and RUM's per-client rate limit.

use std::net::{IpAddr, SocketAddr};

use http::{Extensions, HeaderMap};

/// An address range (`10.0.0.0/8`, `::1/128`, or a single address).
///
/// ```
/// use towerscope_core::IpRange;
/// let r: IpRange = "10.0.0.0/8".parse().unwrap();
/// assert!(r.contains("10.1.2.3".parse().unwrap()));
/// assert!(!r.contains("11.0.0.1".parse().unwrap()));
/// assert!("10.0.0.0/33".parse::<IpRange>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    addr: IpAddr,
    prefix: u8,
}

/// An address range that does not parse.
///
/// ```
/// let err = "10.0.0.0/33".parse::<towerscope_core::IpRange>().unwrap_err();
/// assert_eq!(err.to_string(), r#"invalid address range "10.0.0.0/33" (expected ADDRESS or ADDRESS/PREFIX)"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpRangeError(String);

impl std::fmt::Display for IpRangeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid address range {:?} (expected ADDRESS or ADDRESS/PREFIX)",
            self.0
        )
    }
}

impl std::error::Error for IpRangeError {}

impl std::str::FromStr for IpRange {
    type Err = IpRangeError;
    fn from_str(s: &str) -> Result<Self, IpRangeError> {
        let err = || IpRangeError(s.to_owned());
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| err())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(err)?,
            None => max,
        };
        Ok(Self { addr, prefix })
    }
}

impl IpRange {
    /// Parses a list of ranges; the first that does not parse is the error.
    ///
    /// ```
    /// use towerscope_core::IpRange;
    /// assert_eq!(IpRange::parse_all(["10.0.0.0/8", "::1"]).unwrap().len(), 2);
    /// assert!(IpRange::parse_all(["10.0.0.0/8", "proxy.internal"]).unwrap_err().to_string().contains("proxy.internal"));
    /// ```
    pub fn parse_all<I, S>(ranges: I) -> Result<Vec<Self>, IpRangeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        ranges.into_iter().map(|r| r.as_ref().parse()).collect()
    }

    /// Whether `ip` is in the range.
    ///
    /// ```
    /// use towerscope_core::IpRange;
    /// let v6: IpRange = "fd00::/8".parse().unwrap();
    /// assert!(v6.contains("fd12::1".parse().unwrap()));
    /// assert!(!v6.contains("10.0.0.1".parse().unwrap())); // never across address families
    /// let one: IpRange = "192.0.2.1".parse().unwrap(); // a single address
    /// assert!(one.contains("192.0.2.1".parse().unwrap()) && !one.contains("192.0.2.2".parse().unwrap()));
    /// ```
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Parses one `for=` node of a `Forwarded` header, or one `X-Forwarded-For` entry.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = node.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    // `[2001:db8::1]` without a port.
    node.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// At most this many hops are read from forwarding headers.
const MAX_HOPS: usize = 32;

/// The peer address of a request's connection, from its extensions: [`PeerAddr`](crate::PeerAddr)
/// (as plain extension or axum connect info), or axum's `ConnectInfo<SocketAddr>`, or a
/// `SocketAddr` a hyper accept loop inserted, or (feature `tonic`) the `TcpConnectInfo` a
/// tonic server puts into every request.
///
/// ```
/// use towerscope_core::{PeerAddr, peer_ip};
/// let mut req = http::Request::new(());
/// assert_eq!(peer_ip(req.extensions()), None);
/// req.extensions_mut().insert(PeerAddr("192.0.2.7:40000".parse().unwrap()));
/// assert_eq!(peer_ip(req.extensions()), Some("192.0.2.7".parse().unwrap()));
/// ```
#[inline]
pub fn peer_ip(ext: &Extensions) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    {
        use axum::extract::ConnectInfo;
        if let Some(info) = ext.get::<ConnectInfo<crate::PeerAddr>>() {
            return Some(info.0.0.ip());
        }
        if let Some(info) = ext.get::<ConnectInfo<SocketAddr>>() {
            return Some(info.0.ip());
        }
    }
    let found = ext
        .get::<crate::PeerAddr>()
        .map(|p| p.0.ip())
        .or_else(|| ext.get::<SocketAddr>().map(SocketAddr::ip));
    #[cfg(feature = "tonic")]
    let found = found.or_else(|| {
        ext.get::<tonic::transport::server::TcpConnectInfo>()
            .and_then(|info| info.remote_addr())
            .map(|addr| addr.ip())
    });
    found
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the
/// right-most address in `Forwarded` (`for=`) or `X-Forwarded-For` that is not itself a
/// trusted proxy. Unparseable entries stop the walk (the last trusted hop is returned).
/// Addresses a client wrote itself (left of the first untrusted hop) are never believed.
///
/// ```
/// use towerscope_core::{IpRange, client_ip};
/// let trusted: Vec<IpRange> = vec!["10.0.0.0/8".parse().unwrap()];
/// let mut headers = http::HeaderMap::new();
/// headers.insert("x-forwarded-for", "6.6.6.6, 198.51.100.7".parse().unwrap());
/// // Through the load balancer: the address it saw.
/// let lb = Some("10.0.0.1".parse().unwrap());
/// assert_eq!(client_ip(lb, &headers, &trusted), Some("198.51.100.7".parse().unwrap()));
/// // Straight from the internet: the peer, whatever the header says.
/// let direct = Some("203.0.113.9".parse().unwrap());
/// assert_eq!(client_ip(direct, &headers, &trusted), direct);
/// ```
#[inline]
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpRange]) -> Option<IpAddr> {
    let peer = peer?;
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    let mut hops: Vec<&str> = Vec::new();
    if headers.contains_key(http::header::FORWARDED) {
        for v in headers.get_all(http::header::FORWARDED) {
            let Ok(v) = v.to_str() else { return Some(peer) };
            for element in v.split(',') {
                for pair in element.split(';') {
                    if let Some((k, val)) = pair.split_once('=') {
                        if k.trim().eq_ignore_ascii_case("for") {
                            hops.push(val);
                        }
                    }
                }
            }
        }
    } else {
        for v in headers.get_all("x-forwarded-for") {
            let Ok(v) = v.to_str() else { return Some(peer) };
            hops.extend(v.split(','));
        }
    }
    let mut client = peer;
    for hop in hops.iter().rev().take(MAX_HOPS) {
        match parse_node(hop) {
            Some(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            None => break,
        }
    }
    Some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "tonic")]
    #[tokio::test]
    async fn a_tonic_server_connection_gives_the_peer() {
        use tonic::transport::server::Connected as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr"))
            .await
            .expect("connect");
        let (server_side, _) = listener.accept().await.expect("accept");
        // What tonic's server inserts into each request of the connection.
        let mut ext = Extensions::new();
        ext.insert(server_side.connect_info());
        assert_eq!(peer_ip(&ext), Some(client.local_addr().expect("addr").ip()));
        // A `PeerAddr` set by the application is preferred.
        ext.insert(crate::PeerAddr("192.0.2.1:9".parse().expect("addr")));
        assert_eq!(peer_ip(&ext), Some("192.0.2.1".parse().expect("ip")));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_the_headers_say() {
        let trusted = ["10.0.0.0/8".parse().expect("range")];
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            client_ip(Some("203.0.113.9".parse().expect("ip")), &h, &trusted),
            Some("203.0.113.9".parse().expect("ip"))
        );
    }

    #[test]
    fn trusted_chain_is_walked_from_the_right() {
        let trusted = ["10.0.0.0/8".parse().expect("range")];
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
        // 6.6.6.6 could be forged by the client; 198.51.100.7 is what the first trusted hop saw.
        assert_eq!(
            client_ip(Some("10.0.0.1".parse().expect("ip")), &h, &trusted),
            Some("198.51.100.7".parse().expect("ip"))
        );
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\"",
        )]);
        assert_eq!(
            client_ip(Some("10.0.0.1".parse().expect("ip")), &h, &trusted),
            Some("2001:db8::1".parse().expect("ip"))
        );
        let h = headers(&[("x-forwarded-for", "garbage")]);
        assert_eq!(
            client_ip(Some("10.0.0.1".parse().expect("ip")), &h, &trusted),
            Some("10.0.0.1".parse().expect("ip"))
        );
    }
}
