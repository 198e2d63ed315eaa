use std::fmt;

use uuid::Uuid;

/// Why a value was refused, in words a manager can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BookId(pub Uuid);

impl BookId {
    /// Time-ordered (UUIDv7), so the catalogue pages in registration order.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

impl fmt::Display for BookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

const MAX_TEXT: usize = 200;

fn text(field: &str, raw: &str) -> Result<String, ValueError> {
    let trimmed = raw.trim();
    match trimmed.chars().count() {
        0 => Err(ValueError(format!("{field} must not be empty"))),
        n if n > MAX_TEXT => Err(ValueError(format!(
            "{field} must be at most {MAX_TEXT} characters"
        ))),
        _ if trimmed.chars().any(char::is_control) => Err(ValueError(format!(
            "{field} must not contain control characters"
        ))),
        _ => Ok(trimmed.to_owned()),
    }
}

/// A book's title: 1 to 200 characters, trimmed, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        text("title", raw).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A book's author, with the same rules as a title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Author(String);

impl Author {
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        text("author", raw).map(Self)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What renting the book costs, in the smallest currency unit: 0 (free) up to 1,000,000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RentalFee(u32);

impl RentalFee {
    pub const MAX: u32 = 1_000_000;

    pub fn parse(amount: i64) -> Result<Self, ValueError> {
        match u32::try_from(amount) {
            Ok(fee) if fee <= Self::MAX => Ok(Self(fee)),
            _ if amount < 0 => Err(ValueError("rentalFee must not be negative".into())),
            _ => Err(ValueError(format!(
                "rentalFee must be at most {}",
                Self::MAX
            ))),
        }
    }

    pub fn amount(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_are_trimmed_and_bounded() {
        assert_eq!(Title::parse("  Dune ").unwrap().as_str(), "Dune");
        assert!(Title::parse("   ").is_err());
        assert!(Title::parse(&"x".repeat(201)).is_err());
        assert!(
            Title::parse(&"é".repeat(200)).is_ok(),
            "characters, not bytes"
        );
        assert!(Title::parse("a\u{0}b").is_err());
    }

    #[test]
    fn fees_are_between_zero_and_the_maximum() {
        assert_eq!(RentalFee::parse(0).unwrap().amount(), 0);
        assert_eq!(RentalFee::parse(1_000_000).unwrap().amount(), 1_000_000);
        assert_eq!(
            RentalFee::parse(-1).unwrap_err().0,
            "rentalFee must not be negative"
        );
        assert!(RentalFee::parse(1_000_001).is_err());
        assert!(RentalFee::parse(i64::MAX).is_err());
    }
}
