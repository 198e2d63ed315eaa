use std::fmt;

use uuid::Uuid;

/// Why a value was refused, in words the caller can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PaymentId(pub Uuid);

impl PaymentId {
    /// Time-ordered (UUIDv7), so payments sort by when they were made.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

impl fmt::Display for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a rental costs, in the smallest currency unit: 0 (a free book) up to 1,000,000, the
/// same bounds as a book's rental fee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(u32);

impl Amount {
    pub const MAX: u32 = 1_000_000;

    pub fn parse(amount: i64) -> Result<Self, ValueError> {
        match u32::try_from(amount) {
            Ok(amount) if amount <= Self::MAX => Ok(Self(amount)),
            _ if amount < 0 => Err(ValueError("amount must not be negative".into())),
            _ => Err(ValueError(format!("amount must be at most {}", Self::MAX))),
        }
    }

    pub fn value(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_between_zero_and_the_maximum() {
        assert_eq!(Amount::parse(0).unwrap().value(), 0);
        assert_eq!(Amount::parse(1_000_000).unwrap().value(), 1_000_000);
        assert_eq!(
            Amount::parse(-1).unwrap_err().0,
            "amount must not be negative"
        );
        assert_eq!(
            Amount::parse(1_000_001).unwrap_err().0,
            "amount must be at most 1000000"
        );
        assert!(Amount::parse(i64::MAX).is_err());
        assert!(Amount::parse(i64::MIN).is_err());
    }
}
