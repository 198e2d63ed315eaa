//! How guessing passwords is slowed down, without letting a stranger lock an owner out.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// Where a sign-in comes from, as guesses are counted: an IPv4 address, or an IPv6 address's
/// /64 network, as the HTTP adapter buckets it (a host is usually given a whole /64, so
/// counting per address would give it 2⁶⁴ fresh sets of guesses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    /// `bucket`: an IPv4 address or the first address of an IPv6 /64.
    pub fn new(bucket: IpAddr) -> Self {
        Self(bucket)
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
    fn an_ipv6_client_is_shown_as_its_network() {
        let v6 = ClientAddress::new("2001:db8:1:2::".parse().unwrap());
        assert_eq!(v6.to_string(), "2001:db8:1:2::/64");
        let v4 = ClientAddress::new("192.0.2.7".parse().unwrap());
        assert_eq!(v4.to_string(), "192.0.2.7");
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
