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

    use super::*;

    enum Event {
        Rental(RentalEvent),
        Payment(PaymentEvent),
    }

    impl From<RentalEvent> for Event {
        fn from(event: RentalEvent) -> Self {
            Self::Rental(event)
        }
    }

    impl From<PaymentEvent> for Event {
        fn from(event: PaymentEvent) -> Self {
            Self::Payment(event)
        }
    }

    type Story = crate::domain::story::Story<Event>;

    /// The record `events` make, merged in the order given.
    fn merge<'a>(story: &Story, events: impl IntoIterator<Item = &'a Event>) -> RentalRecord {
        let mut record = RentalRecord::new(story.rental, story.customer);
        for event in events {
            match event {
                Event::Rental(e) => record.record(e),
                Event::Payment(e) => record.record_payment(e),
            }
        }
        record
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
        let expected = merge(&story, &events);
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
            assert_eq!(merge(&story, order), expected);
        }
    }

    #[test]
    fn a_returned_rental_ends_the_same_in_every_order() {
        let story = Story::new();
        let events = [story.rented(), story.approved(), story.returned()];
        let expected = merge(&story, &events);
        assert_eq!(expected.status, Some(RentalStatus::Returned));
        assert_eq!(expected.payment_status, Some(PaymentStatus::Approved));
        assert!(expected.returned_at.is_some());
        for order in orders(&events) {
            assert_eq!(merge(&story, order), expected);
        }
    }

    #[test]
    fn an_expired_rental_ends_the_same_in_every_order_and_is_not_overdue() {
        let story = Story::new();
        let events = [story.rented(), story.approved(), story.expired()];
        let expected = merge(&story, &events);
        assert_eq!(expected.status, Some(RentalStatus::Expired));
        assert_eq!(
            expected.returned_at, expected.due_at,
            "it ended when it was due"
        );
        assert!(!expected.overdue(story.at + Duration::days(30)));
        for order in orders(&events) {
            assert_eq!(merge(&story, order), expected);
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
        let once = merge(&story, &events);
        let twice = merge(&story, events.iter().chain(&events));
        assert_eq!(once, twice);
    }

    #[test]
    fn a_payment_known_before_its_rental_has_no_rental_status_yet() {
        let story = Story::new();
        let record = merge(&story, &[story.refunded()]);
        assert_eq!(record.status, None);
        assert_eq!(record.payment_status, Some(PaymentStatus::Refunded));
        assert_eq!(record.book_id, None);
        assert_eq!(record.payment_id, Some(story.payment));
    }

    #[test]
    fn overdue_means_still_rented_after_the_due_date() {
        let story = Story::new();
        let rented = merge(&story, &[story.rented()]);
        let due = rented.due_at.unwrap();
        assert!(!rented.overdue(due - Duration::seconds(1)));
        assert!(rented.overdue(due + Duration::seconds(1)));
        let returned = merge(&story, &[story.rented(), story.returned()]);
        assert!(!returned.overdue(due + Duration::days(30)));
        let unknown_due = merge(&story, &[story.approved()]);
        assert!(!unknown_due.overdue(due + Duration::days(30)));
    }
}
