use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use uuid::Uuid;

/// Simulated processing time of a payment, in milliseconds: a fixed `300`, or `400..620`, a
/// time drawn uniformly from 400 to 620 inclusive for each payment (the seed systems' payment
/// gateway answered in that range, so rental's call timeout can be tried against it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    min_ms: u64,
    max_ms: u64,
}

impl Latency {
    pub fn fixed(ms: u64) -> Self {
        Self {
            min_ms: ms,
            max_ms: ms,
        }
    }

    /// The longest a payment may take.
    pub fn max(&self) -> Duration {
        Duration::from_millis(self.max_ms)
    }

    /// One payment's processing time.
    pub fn sample(&self) -> Duration {
        let span = self.max_ms - self.min_ms;
        // A v4 UUID holds 122 random bits; 64 of them are plenty (and no new dependency).
        let random = Uuid::new_v4().as_u128() as u64;
        let offset = match span.checked_add(1) {
            Some(choices) => random % choices,
            None => random,
        };
        Duration::from_millis(self.min_ms + offset)
    }
}

impl FromStr for Latency {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let number = |n: &str| {
            n.trim()
                .parse::<u64>()
                .map_err(|_| "expected milliseconds, as 300 or a range 400..620".to_owned())
        };
        match s.split_once("..") {
            None => number(s).map(Self::fixed),
            Some((min, max)) => {
                let (min_ms, max_ms) = (number(min)?, number(max)?);
                if min_ms > max_ms {
                    return Err(format!(
                        "the range {min_ms}..{max_ms} is empty; write the shorter time first"
                    ));
                }
                Ok(Self { min_ms, max_ms })
            }
        }
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.min_ms == self.max_ms {
            write!(f, "{} ms", self.min_ms)
        } else {
            write!(f, "{}..{} ms", self.min_ms, self.max_ms)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_or_a_range_is_accepted() {
        assert_eq!("300".parse(), Ok(Latency::fixed(300)));
        assert_eq!(
            "400..620".parse(),
            Ok(Latency {
                min_ms: 400,
                max_ms: 620
            })
        );
        assert_eq!(" 0 .. 5 ".trim().parse::<Latency>().unwrap().max_ms, 5);
        assert_eq!("7..7".parse(), Ok(Latency::fixed(7)));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "", "abc", "-5", "1.5", "620..400", "..5", "5..", "1..2..3", "1...3",
        ] {
            assert!(bad.parse::<Latency>().is_err(), "{bad:?} was accepted");
        }
        assert!(
            "620..400"
                .parse::<Latency>()
                .unwrap_err()
                .contains("is empty")
        );
    }

    #[test]
    fn samples_stay_in_the_range_and_vary() {
        let latency: Latency = "400..620".parse().unwrap();
        let samples: Vec<_> = (0..500).map(|_| latency.sample().as_millis()).collect();
        assert!(samples.iter().all(|ms| (400..=620).contains(ms)));
        assert!(samples.iter().any(|ms| *ms < 450) && samples.iter().any(|ms| *ms > 570));
        assert_eq!(
            Latency::fixed(300).sample(),
            Duration::from_millis(300),
            "a fixed latency is fixed"
        );
        let widest = Latency {
            min_ms: 0,
            max_ms: u64::MAX,
        };
        widest.sample(); // no overflow
    }
}
