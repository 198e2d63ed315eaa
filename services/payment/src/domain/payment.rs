use chrono::{DateTime, Utc};
use shared_events::{PaymentApproved, PaymentRefunded};
use uuid::Uuid;

use super::{Amount, PaymentId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    Approved,
    Declined,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Approved => "APPROVED",
            PaymentStatus::Declined => "DECLINED",
            PaymentStatus::Refunded => "REFUNDED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "APPROVED" => Some(Self::Approved),
            "DECLINED" => Some(Self::Declined),
            "REFUNDED" => Some(Self::Refunded),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("the payment was declined; there is nothing to refund")]
    Declined,
}

/// Which payments are declined. Without a real card network behind it, the service declines
/// by amount, so the fleet's "payment declined" path can be exercised on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeclineRule {
    above: Option<u32>,
}

impl DeclineRule {
    /// Approves every payment.
    pub fn never() -> Self {
        Self { above: None }
    }

    /// Declines every payment of more than `limit`.
    pub fn amount_above(limit: u32) -> Self {
        Self { above: Some(limit) }
    }

    pub fn declines(&self, amount: Amount) -> bool {
        self.above.is_some_and(|limit| amount.value() > limit)
    }
}

/// The payment of one rental. The rental id is the idempotency key: a rental has at most one
/// payment, whatever the number of attempts to pay for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub rental_id: Uuid,
    pub user_id: Uuid,
    pub amount: Amount,
    pub status: PaymentStatus,
    pub created_at: DateTime<Utc>,
    /// Set exactly when the payment is refunded.
    pub refunded_at: Option<DateTime<Utc>>,
}

impl Payment {
    /// Settles a rental's fee: approved (and announced), or declined (which nobody else needs
    /// to hear of: the rental learns it from the answer).
    pub fn settle(
        rental_id: Uuid,
        user_id: Uuid,
        amount: Amount,
        rule: &DeclineRule,
        now: DateTime<Utc>,
    ) -> (Self, Option<PaymentApproved>) {
        let status = if rule.declines(amount) {
            PaymentStatus::Declined
        } else {
            PaymentStatus::Approved
        };
        let payment = Self {
            id: PaymentId::generate(),
            rental_id,
            user_id,
            amount,
            status,
            created_at: now,
            refunded_at: None,
        };
        let event = (status == PaymentStatus::Approved).then(|| PaymentApproved {
            payment_id: payment.id.0,
            rental_id,
            user_id,
            amount: amount.value(),
            approved_at: now,
        });
        (payment, event)
    }

    /// Whether a request to pay for this payment's rental asks for the same thing. A retry
    /// does; another customer or amount under the same rental id is a different request.
    pub fn is_same_request(&self, user_id: Uuid, amount: Amount) -> bool {
        self.user_id == user_id && self.amount == amount
    }

    /// Gives the money back. Refunding a refunded payment changes nothing and announces
    /// nothing, so the customer is never refunded twice.
    pub fn refund(&mut self, now: DateTime<Utc>) -> Result<Option<PaymentRefunded>, PaymentError> {
        match self.status {
            PaymentStatus::Declined => Err(PaymentError::Declined),
            PaymentStatus::Refunded => Ok(None),
            PaymentStatus::Approved => {
                // Replicas' clocks differ a little; a refund never predates its payment.
                let refunded_at = now.max(self.created_at);
                self.status = PaymentStatus::Refunded;
                self.refunded_at = Some(refunded_at);
                Ok(Some(PaymentRefunded {
                    payment_id: self.id.0,
                    rental_id: self.rental_id,
                    user_id: self.user_id,
                    amount: self.amount.value(),
                    refunded_at,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn amount(value: i64) -> Amount {
        Amount::parse(value).unwrap()
    }

    fn approved() -> Payment {
        let (payment, _) = Payment::settle(
            Uuid::new_v4(),
            Uuid::new_v4(),
            amount(300),
            &DeclineRule::never(),
            Utc::now(),
        );
        payment
    }

    #[test]
    fn an_approved_payment_is_announced() {
        let (rental, user, now) = (Uuid::new_v4(), Uuid::new_v4(), Utc::now());
        let (payment, event) =
            Payment::settle(rental, user, amount(450), &DeclineRule::never(), now);
        assert_eq!(payment.status, PaymentStatus::Approved);
        assert_eq!(payment.refunded_at, None);
        assert_eq!(
            event,
            Some(PaymentApproved {
                payment_id: payment.id.0,
                rental_id: rental,
                user_id: user,
                amount: 450,
                approved_at: now,
            })
        );
    }

    #[test]
    fn a_payment_above_the_limit_is_declined_and_announces_nothing() {
        let rule = DeclineRule::amount_above(500);
        let settle = |value| {
            Payment::settle(
                Uuid::new_v4(),
                Uuid::new_v4(),
                amount(value),
                &rule,
                Utc::now(),
            )
        };
        let (payment, event) = settle(501);
        assert_eq!(payment.status, PaymentStatus::Declined);
        assert_eq!(event, None);
        let (payment, event) = settle(500);
        assert_eq!(
            payment.status,
            PaymentStatus::Approved,
            "the limit itself is paid"
        );
        assert!(event.is_some());
        assert!(!DeclineRule::never().declines(amount(1_000_000)));
    }

    #[test]
    fn a_payment_is_refunded_once() {
        let mut payment = approved();
        let now = Utc::now();
        let event = payment.refund(now).unwrap().expect("a PaymentRefunded");
        assert_eq!(payment.status, PaymentStatus::Refunded);
        assert_eq!(payment.refunded_at, Some(now));
        assert_eq!(event.payment_id, payment.id.0);
        assert_eq!(event.rental_id, payment.rental_id);
        assert_eq!(event.amount, 300);

        let later = now + Duration::seconds(5);
        assert_eq!(payment.refund(later), Ok(None), "no second refund");
        assert_eq!(payment.refunded_at, Some(now), "the first refund stands");
    }

    #[test]
    fn a_declined_payment_cannot_be_refunded() {
        let (mut payment, _) = Payment::settle(
            Uuid::new_v4(),
            Uuid::new_v4(),
            amount(10),
            &DeclineRule::amount_above(5),
            Utc::now(),
        );
        assert_eq!(payment.refund(Utc::now()), Err(PaymentError::Declined));
        assert_eq!(payment.status, PaymentStatus::Declined);
        assert_eq!(payment.refunded_at, None);
    }

    #[test]
    fn a_refund_never_predates_its_payment() {
        let mut payment = approved();
        let skewed = payment.created_at - Duration::milliseconds(3);
        let event = payment.refund(skewed).unwrap().unwrap();
        assert_eq!(event.refunded_at, payment.created_at);
    }

    #[test]
    fn a_retry_is_the_same_request_and_another_customer_or_amount_is_not() {
        let payment = approved();
        assert!(payment.is_same_request(payment.user_id, amount(300)));
        assert!(!payment.is_same_request(payment.user_id, amount(301)));
        assert!(!payment.is_same_request(Uuid::new_v4(), amount(300)));
    }
}
