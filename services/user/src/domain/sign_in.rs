//! How guessing passwords is slowed down, without letting a stranger lock an owner out.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// Where a sign-in comes from, as guesses are counted: an IPv4 address, or an IPv6 address's
/// /64 network (a host is usually given a whole /64, so counting per address would give it
/// 2⁶⁴ fresh sets of guesses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(_) => Self(address),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let network = u128::from(v6) & !((1u128 << 64) - 1);
                    Self(IpAddr::V6(Ipv6Addr::from(network)))
                }
            },
        }
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => v4.fmt(f),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The rules for failed sign-ins against one address.
///
/// - **Hard stop, per address and client**: `max_failures` within `window` and that client is
///   refused for that address until the window ends. Nobody else is.
/// - **Growing delay, per address**: once `slow_after` attempts have failed within the window,
///   from any clients, each further attempt waits `first_delay`, doubled with each failure, at
///   most `max_delay`, before its password is checked. It waits; it is never refused, so the
///   owner on a client of their own always gets in with the right password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuessingPolicy {
    pub max_failures: u32,
    pub window: Duration,
    pub slow_after: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl GuessingPolicy {
    /// How long an attempt waits before its check, when `failures` attempts against the address
    /// have failed within the window before it.
    pub fn delay(&self, failures: u32) -> Duration {
        let Some(over) = failures.checked_sub(self.slow_after) else {
            return Duration::ZERO;
        };
        // 2^20 × any sane first delay is past any sane cap.
        let doubled = self.first_delay.saturating_mul(1 << over.min(20));
        doubled.min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let a = ClientAddress::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = ClientAddress::of("2001:db8:1:2:bbbb::9".parse().unwrap());
        let c = ClientAddress::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        let mapped = ClientAddress::of("::ffff:192.0.2.7".parse().unwrap());
        assert_eq!(mapped.to_string(), "192.0.2.7");
    }

    #[test]
    fn the_delay_starts_late_doubles_and_stops_growing() {
        let policy = GuessingPolicy {
            max_failures: 5,
            window: Duration::from_secs(300),
            slow_after: 10,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        assert_eq!(policy.delay(0), Duration::ZERO);
        assert_eq!(policy.delay(9), Duration::ZERO);
        assert_eq!(policy.delay(10), Duration::from_millis(100));
        assert_eq!(policy.delay(11), Duration::from_millis(200));
        assert_eq!(policy.delay(14), Duration::from_millis(1600));
        assert_eq!(policy.delay(15), Duration::from_secs(2));
        assert_eq!(policy.delay(u32::MAX), Duration::from_secs(2));
    }
}
