/// A status that only ever moves forward: a record keeps the one of the highest rank it has
/// seen, so a late event cannot undo a later state.
pub trait Ranked: Copy {
    fn rank(self) -> u8;

    /// What a record knows after seeing `seen`: a status of equal rank does not replace the one
    /// known (the ends of a rental exclude each other, so only one ever arrives).
    fn later(known: Option<Self>, seen: Self) -> Self {
        match known {
            Some(known) if known.rank() >= seen.rank() => known,
            _ => seen,
        }
    }
}

/// Where a rental is, as far as the rental service's events tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RentalStatus {
    Rented,
    Returned,
    /// The rental period ran out and the book went back by itself.
    Expired,
    Cancelled,
}

impl Ranked for RentalStatus {
    fn rank(self) -> u8 {
        match self {
            RentalStatus::Rented => 1,
            RentalStatus::Returned | RentalStatus::Expired | RentalStatus::Cancelled => 2,
        }
    }
}

impl RentalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RentalStatus::Rented => "RENTED",
            RentalStatus::Returned => "RETURNED",
            RentalStatus::Expired => "EXPIRED",
            RentalStatus::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RENTED" => Some(Self::Rented),
            "RETURNED" => Some(Self::Returned),
            "EXPIRED" => Some(Self::Expired),
            "CANCELLED" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// Where a rental's payment is, as far as the payment service's events tell (a declined
/// payment publishes nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentStatus {
    Approved,
    Refunded,
}

impl Ranked for PaymentStatus {
    fn rank(self) -> u8 {
        match self {
            PaymentStatus::Approved => 1,
            PaymentStatus::Refunded => 2,
        }
    }
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Approved => "APPROVED",
            PaymentStatus::Refunded => "REFUNDED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "APPROVED" => Some(Self::Approved),
            "REFUNDED" => Some(Self::Refunded),
            _ => None,
        }
    }
}

/// Whether a book can be rented now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Availability {
    Available,
    Rented,
    Retired,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Available => "AVAILABLE",
            Availability::Rented => "RENTED",
            Availability::Retired => "RETIRED",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_only_moves_forward() {
        use RentalStatus::*;
        assert_eq!(RentalStatus::later(None, Rented), Rented);
        assert_eq!(RentalStatus::later(Some(Rented), Returned), Returned);
        assert_eq!(RentalStatus::later(Some(Cancelled), Rented), Cancelled);
        assert_eq!(RentalStatus::later(Some(Returned), Rented), Returned);
        assert_eq!(
            PaymentStatus::later(Some(PaymentStatus::Refunded), PaymentStatus::Approved),
            PaymentStatus::Refunded
        );
    }

    #[test]
    fn statuses_read_back_as_written() {
        for status in [
            RentalStatus::Rented,
            RentalStatus::Returned,
            RentalStatus::Cancelled,
        ] {
            assert_eq!(RentalStatus::parse(status.as_str()), Some(status));
        }
        for status in [PaymentStatus::Approved, PaymentStatus::Refunded] {
            assert_eq!(PaymentStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(RentalStatus::parse("rented"), None);
        assert_eq!(PaymentStatus::parse("DECLINED"), None);
    }
}
