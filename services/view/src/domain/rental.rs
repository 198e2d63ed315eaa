use chrono::{DateTime, Utc};
use shared_events::{PaymentEvent, RentalEvent, ReturnReason};
use uuid::Uuid;

use super::{PaymentStatus, Ranked, RentalStatus};

/// What the view knows of one rental, merged from `rental.events` and `payment.events`.
/// A field is `None` until the event that owns it arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RentalRecord {
    pub id: Uuid,
    /// Every event of a rental names its customer, so this is known from the first one.
    pub customer_id: Uuid,
    pub book_id: Option<Uuid>,
    /// From `BookRented`.
    pub rental_fee: Option<u32>,
    pub payment_id: Option<Uuid>,
    /// `None` while only payment events have arrived.
    pub status: Option<RentalStatus>,
    pub payment_status: Option<PaymentStatus>,
    pub rented_at: Option<DateTime<Utc>>,
    pub due_at: Option<DateTime<Utc>>,
    pub returned_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub refunded_at: Option<DateTime<Utc>>,
}

impl RentalRecord {
    /// A rental the view has just heard of.
    pub fn new(id: Uuid, customer_id: Uuid) -> Self {
        Self {
            id,
            customer_id,
            book_id: None,
            rental_fee: None,
            payment_id: None,
            status: None,
            payment_status: None,
            rented_at: None,
            due_at: None,
            returned_at: None,
            cancelled_at: None,
            refunded_at: None,
        }
    }

    /// Merges an event of the rental service about this rental.
    pub fn record(&mut self, event: &RentalEvent) {
        let (book_id, seen) = match event {
            RentalEvent::BookRented(e) => {
                self.rental_fee = Some(e.rental_fee);
                self.payment_id.get_or_insert(e.payment_id);
                self.rented_at = Some(e.rented_at);
                self.due_at = Some(e.due_at);
                (e.book_id, RentalStatus::Rented)
            }
            RentalEvent::RentalCancelled(e) => {
                self.payment_id.get_or_insert(e.payment_id);
                self.cancelled_at = Some(e.cancelled_at);
                (e.book_id, RentalStatus::Cancelled)
            }
            RentalEvent::BookReturned(e) => {
                self.returned_at = Some(e.returned_at);
                let ended = match e.reason {
                    ReturnReason::Returned => RentalStatus::Returned,
                    ReturnReason::Expired => RentalStatus::Expired,
                };
                (e.book_id, ended)
            }
        };
        self.book_id.get_or_insert(book_id);
        self.status = Some(RentalStatus::later(self.status, seen));
    }

    /// Merges an event of the payment service about this rental's payment.
    pub fn record_payment(&mut self, event: &PaymentEvent) {
        let (payment_id, seen) = match event {
            PaymentEvent::PaymentApproved(e) => (e.payment_id, PaymentStatus::Approved),
            PaymentEvent::PaymentRefunded(e) => {
                self.refunded_at = Some(e.refunded_at);
                (e.payment_id, PaymentStatus::Refunded)
            }
        };
        self.payment_id.get_or_insert(payment_id);
        self.payment_status = Some(PaymentStatus::later(self.payment_status, seen));
    }

    /// Still rented after its due date, as of `now` (a property of the moment of reading, never
    /// stored).
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.status == Some(RentalStatus::Rented) && self.due_at.is_some_and(|due| due < now)
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use shared_events::{
        BookRented, BookReturned, PaymentApproved, PaymentRefunded, RentalCancelled,
    };

    use super::*;

    enum Event {
        Rental(RentalEvent),
        Payment(PaymentEvent),
    }

    struct Story {
        rental: Uuid,
        customer: Uuid,
        book: Uuid,
        payment: Uuid,
        at: DateTime<Utc>,
    }

    impl Story {
        fn new() -> Self {
            Self {
                rental: Uuid::now_v7(),
                customer: Uuid::now_v7(),
                book: Uuid::now_v7(),
                payment: Uuid::now_v7(),
                at: "2026-03-01T10:00:00Z".parse().unwrap(),
            }
        }

        fn rented(&self) -> Event {
            Event::Rental(
                BookRented {
                    rental_id: self.rental,
                    book_id: self.book,
                    user_id: self.customer,
                    rental_fee: 450,
                    payment_id: self.payment,
                    rented_at: self.at,
                    due_at: self.at + Duration::days(14),
                }
                .into(),
            )
        }

        fn cancelled(&self) -> Event {
            Event::Rental(
                RentalCancelled {
                    rental_id: self.rental,
                    book_id: self.book,
                    user_id: self.customer,
                    payment_id: self.payment,
                    cancelled_at: self.at + Duration::hours(1),
                }
                .into(),
            )
        }

        fn returned(&self) -> Event {
            Event::Rental(
                BookReturned {
                    rental_id: self.rental,
                    book_id: self.book,
                    user_id: self.customer,
                    returned_at: self.at + Duration::days(3),
                    reason: shared_events::ReturnReason::Returned,
                }
                .into(),
            )
        }

        fn expired(&self) -> Event {
            Event::Rental(
                BookReturned {
                    rental_id: self.rental,
                    book_id: self.book,
                    user_id: self.customer,
                    returned_at: self.at + Duration::days(14),
                    reason: shared_events::ReturnReason::Expired,
                }
                .into(),
            )
        }

        fn approved(&self) -> Event {
            Event::Payment(
                PaymentApproved {
                    payment_id: self.payment,
                    rental_id: self.rental,
                    user_id: self.customer,
                    amount: 450,
                    approved_at: self.at,
                }
                .into(),
            )
        }

        fn refunded(&self) -> Event {
            Event::Payment(
                PaymentRefunded {
                    payment_id: self.payment,
                    rental_id: self.rental,
                    user_id: self.customer,
                    amount: 450,
                    refunded_at: self.at + Duration::hours(2),
                }
                .into(),
            )
        }

        fn merge<'a>(&self, events: impl IntoIterator<Item = &'a Event>) -> RentalRecord {
            let mut record = RentalRecord::new(self.rental, self.customer);
            for event in events {
                match event {
                    Event::Rental(e) => record.record(e),
                    Event::Payment(e) => record.record_payment(e),
                }
            }
            record
        }
    }

    /// Every order of `events`, by Heap's algorithm.
    fn orders<T>(events: &[T]) -> Vec<Vec<&T>> {
        fn heap<'a, T>(k: usize, items: &mut Vec<&'a T>, out: &mut Vec<Vec<&'a T>>) {
            if k <= 1 {
                out.push(items.clone());
                return;
            }
            for i in 0..k {
                heap(k - 1, items, out);
                let j = if k.is_multiple_of(2) { i } else { 0 };
                items.swap(j, k - 1);
            }
        }
        let mut out = Vec::new();
        heap(events.len(), &mut events.iter().collect(), &mut out);
        out
    }

    #[test]
    fn a_cancelled_rental_ends_the_same_in_every_order() {
        let story = Story::new();
        let events = [
            story.rented(),
            story.approved(),
            story.cancelled(),
            story.refunded(),
        ];
        let expected = story.merge(&events);
        assert_eq!(expected.status, Some(RentalStatus::Cancelled));
        assert_eq!(expected.payment_status, Some(PaymentStatus::Refunded));
        assert_eq!(expected.rental_fee, Some(450));
        assert_eq!(expected.book_id, Some(story.book));
        assert_eq!(expected.payment_id, Some(story.payment));
        assert!(expected.rented_at.is_some() && expected.due_at.is_some());
        assert!(expected.cancelled_at.is_some() && expected.refunded_at.is_some());
        let orders = orders(&events);
        assert_eq!(orders.len(), 24);
        for order in orders {
            assert_eq!(story.merge(order), expected);
        }
    }

    #[test]
    fn a_returned_rental_ends_the_same_in_every_order() {
        let story = Story::new();
        let events = [story.rented(), story.approved(), story.returned()];
        let expected = story.merge(&events);
        assert_eq!(expected.status, Some(RentalStatus::Returned));
        assert_eq!(expected.payment_status, Some(PaymentStatus::Approved));
        assert!(expected.returned_at.is_some());
        for order in orders(&events) {
            assert_eq!(story.merge(order), expected);
        }
    }

    #[test]
    fn an_expired_rental_ends_the_same_in_every_order_and_is_not_overdue() {
        let story = Story::new();
        let events = [story.rented(), story.approved(), story.expired()];
        let expected = story.merge(&events);
        assert_eq!(expected.status, Some(RentalStatus::Expired));
        assert_eq!(
            expected.returned_at, expected.due_at,
            "it ended when it was due"
        );
        assert!(!expected.overdue(story.at + Duration::days(30)));
        for order in orders(&events) {
            assert_eq!(story.merge(order), expected);
        }
    }

    #[test]
    fn an_event_seen_twice_changes_nothing() {
        let story = Story::new();
        let events = [
            story.rented(),
            story.approved(),
            story.cancelled(),
            story.refunded(),
        ];
        let once = story.merge(&events);
        let twice = story.merge(events.iter().chain(&events));
        assert_eq!(once, twice);
    }

    #[test]
    fn a_payment_known_before_its_rental_has_no_rental_status_yet() {
        let story = Story::new();
        let record = story.merge(&[story.refunded()]);
        assert_eq!(record.status, None);
        assert_eq!(record.payment_status, Some(PaymentStatus::Refunded));
        assert_eq!(record.book_id, None);
        assert_eq!(record.payment_id, Some(story.payment));
    }

    #[test]
    fn overdue_means_still_rented_after_the_due_date() {
        let story = Story::new();
        let rented = story.merge(&[story.rented()]);
        let due = rented.due_at.unwrap();
        assert!(!rented.overdue(due - Duration::seconds(1)));
        assert!(rented.overdue(due + Duration::seconds(1)));
        let returned = story.merge(&[story.rented(), story.returned()]);
        assert!(!returned.overdue(due + Duration::days(30)));
        let unknown_due = story.merge(&[story.approved()]);
        assert!(!unknown_due.overdue(due + Duration::days(30)));
    }
}
