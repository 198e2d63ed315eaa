/// A number of points: a customer's balance, or what one rental earned. Unsigned, so a balance
/// can never go below zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Points(u64);

impl Points {
    pub const ZERO: Points = Points(0);

    pub const fn new(points: u64) -> Self {
        Self(points)
    }

    pub const fn value(self) -> u64 {
        self.0
    }

    /// The two added. Saturating: fees are at most `u32::MAX` each, so no fleet reaches the
    /// bound, and a balance must not wrap around to a small number if one did.
    pub fn plus(self, other: Points) -> Points {
        Points(self.0.saturating_add(other.0))
    }
}

/// Why an earning rate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be a whole percent from 0 to 100, not {0}")]
pub struct RateError(pub u32);

/// The share of a completed rental's fee that comes back as points, in whole percent: 0 (points
/// switched off) to 100 (a point per unit of the fee).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EarningRate(u8);

impl EarningRate {
    /// 10 %, as the seed planned.
    pub const DEFAULT: EarningRate = EarningRate(10);

    pub fn percent(percent: u32) -> Result<Self, RateError> {
        match u8::try_from(percent) {
            Ok(percent) if percent <= 100 => Ok(Self(percent)),
            _ => Err(RateError(percent)),
        }
    }

    pub fn as_percent(self) -> u8 {
        self.0
    }

    /// What a rental of `fee` (in the smallest currency unit) earns: fee × percent / 100,
    /// rounded down, so nobody earns a point they did not pay for in full.
    pub fn earn(self, fee: u32) -> Points {
        Points(u64::from(fee) * u64::from(self.0) / 100)
    }
}

impl Default for EarningRate {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rental_earns_its_share_of_the_fee_rounded_down() {
        let ten = EarningRate::DEFAULT;
        assert_eq!(ten.earn(300), Points::new(30));
        assert_eq!(ten.earn(459), Points::new(45));
        assert_eq!(ten.earn(9), Points::ZERO);
        assert_eq!(ten.earn(0), Points::ZERO);
        let quarter = EarningRate::percent(25).unwrap();
        assert_eq!(quarter.earn(333), Points::new(83));
        assert_eq!(EarningRate::percent(0).unwrap().earn(1_000), Points::ZERO);
        let all = EarningRate::percent(100).unwrap();
        assert_eq!(all.earn(u32::MAX), Points::new(u64::from(u32::MAX)));
    }

    #[test]
    fn the_rate_is_a_whole_percent_from_0_to_100() {
        assert_eq!(EarningRate::percent(0).unwrap().as_percent(), 0);
        assert_eq!(EarningRate::percent(100).unwrap().as_percent(), 100);
        assert_eq!(EarningRate::percent(101), Err(RateError(101)));
        assert_eq!(EarningRate::percent(u32::MAX), Err(RateError(u32::MAX)));
        assert_eq!(
            RateError(101).to_string(),
            "must be a whole percent from 0 to 100, not 101"
        );
        assert_eq!(EarningRate::default(), EarningRate::DEFAULT);
    }

    #[test]
    fn balances_add_up_and_never_wrap() {
        assert_eq!(Points::new(30).plus(Points::new(45)), Points::new(75));
        assert_eq!(
            Points::new(u64::MAX).plus(Points::new(1)),
            Points::new(u64::MAX)
        );
        assert_eq!(Points::default(), Points::ZERO);
    }
}
