//! Who a client is, for its budgets (rate limits, sign-in throttles): the connection's address,
//! or behind trusted proxies the address they vouch for in `X-Forwarded-For`.
//!
//! Each trusted proxy appends the address it saw the request come from; walking back from the
//! connection, each trusted hop vouches for the one before it, and the first hop that is not a
//! trusted proxy is the client. Entries left of it are the client's own word and are ignored.
//! When every hop is a trusted proxy, the request started inside the trusted network: the
//! left-most hop is the client.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// The client of a request that came from `peer` with these `X-Forwarded-For` header values (in
/// the order received), given the `trusted` proxies. Entries may carry a port (`ip:port`,
/// `[v6]:port`), as some proxies write them. An entry that is no address stops the walk: the
/// trusted hop that wrote it is the client as far as anyone can tell.
pub fn client<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    let peer = peer.to_canonical();
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|header| header.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(address) = parse_hop(hop) else {
            return client;
        };
        client = address;
        if !is_trusted(&address) {
            return address;
        }
    }
    client
}

/// The trusted proxies named by variable `name`: comma-separated addresses or CIDR blocks.
pub fn trusted_proxies(env: &mut fleet_config::Env, name: &str) -> Vec<IpNet> {
    let listed: String = env.or(name, String::new());
    let mut trusted = Vec::new();
    for proxy in listed.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match proxy
            .parse::<IpNet>()
            .or_else(|_| proxy.parse::<IpAddr>().map(IpNet::from))
        {
            Ok(net) => trusted.push(net),
            Err(_) => env.invalid(format!(
                "{name}: {proxy:?} is not an address or a CIDR block such as 10.0.0.0/8"
            )),
        }
    }
    trusted
}

/// One `X-Forwarded-For` entry: `ip`, `ip:port`, `[v6]` or `[v6]:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim_matches('"');
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(address.to_canonical());
    }
    if let Ok(socket) = hop.parse::<SocketAddr>() {
        return Some(socket.ip().to_canonical());
    }
    hop.strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
        .map(|v6| IpAddr::V6(v6).to_canonical())
}

/// The budget a client address counts against: an IPv4 address alone, an IPv6 address's /64
/// network (one subscriber is commonly given a whole /64, so per address it would have billions
/// of budgets).
pub fn bucket(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted() -> Vec<IpNet> {
        vec![
            "10.0.0.0/8".parse().unwrap(),
            "192.0.2.7/32".parse().unwrap(),
            "fd00::/8".parse().unwrap(),
        ]
    }

    #[test]
    fn from_a_stranger_forwarded_for_is_ignored() {
        assert_eq!(
            client(ip("203.0.113.9"), ["198.51.100.1"], &trusted()),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn behind_a_proxy_the_client_is_the_right_most_untrusted_hop() {
        let t = trusted();
        // The client's made-up entries stand left of the one the proxy wrote.
        assert_eq!(
            client(ip("10.1.2.3"), ["6.6.6.6, 198.51.100.1"], &t),
            ip("198.51.100.1")
        );
        // Through two proxies, over two headers.
        assert_eq!(
            client(ip("10.1.2.3"), ["6.6.6.6, 198.51.100.1", "192.0.2.7"], &t),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn entries_with_a_port_are_read_not_skipped() {
        let t = trusted();
        // Skipping the proxy's `ip:port` entry would pick the client's forged one instead.
        assert_eq!(
            client(ip("10.1.2.3"), ["6.6.6.6, 198.51.100.1:51234"], &t),
            ip("198.51.100.1")
        );
        assert_eq!(
            client(ip("10.1.2.3"), ["6.6.6.6, [2001:db8::1]:443"], &t),
            ip("2001:db8::1")
        );
        assert_eq!(
            client(ip("10.1.2.3"), ["[2001:db8::2]"], &t),
            ip("2001:db8::2")
        );
        assert_eq!(
            client(ip("10.1.2.3"), ["\"[2001:db8::3]:80\""], &t),
            ip("2001:db8::3")
        );
        // A trusted hop with a port vouches like one without.
        assert_eq!(
            client(ip("10.1.2.3"), ["198.51.100.4, 10.9.9.9:8443"], &t),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn when_every_hop_is_trusted_the_client_is_the_left_most() {
        let t = trusted();
        assert_eq!(
            client(ip("10.1.2.3"), ["10.4.4.4, 10.9.9.9"], &t),
            ip("10.4.4.4")
        );
        // No entry at all: the proxy itself.
        assert_eq!(client(ip("10.1.2.3"), [], &t), ip("10.1.2.3"));
    }

    #[test]
    fn rubbish_stops_the_walk_at_the_hop_that_wrote_it() {
        let t = trusted();
        assert_eq!(
            client(ip("10.1.2.3"), ["not an address"], &t),
            ip("10.1.2.3")
        );
        // The client's own forgery left of rubbish is never reached.
        assert_eq!(
            client(ip("10.1.2.3"), ["6.6.6.6, unknown, 10.9.9.9"], &t),
            ip("10.9.9.9")
        );
    }

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let t = trusted();
        assert_eq!(
            client(ip("::ffff:10.1.2.3"), ["::ffff:198.51.100.1"], &t),
            ip("198.51.100.1")
        );
        assert_eq!(
            client(ip("::ffff:203.0.113.9"), ["198.51.100.1"], &t),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ipv6_clients_share_a_budget_per_64() {
        assert_eq!(
            bucket(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
        assert_eq!(bucket(ip("2001:db8:1:2::1")), bucket(ip("2001:db8:1:2::2")));
        assert_ne!(bucket(ip("2001:db8:1:2::1")), bucket(ip("2001:db8:1:3::1")));
        assert_eq!(bucket(ip("198.51.100.1")), ip("198.51.100.1"));
        assert_eq!(bucket(ip("::ffff:198.51.100.1")), ip("198.51.100.1"));
    }
}
