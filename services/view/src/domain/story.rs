//! One rental's story for tests: its events, each as the type a test merges (a domain test's
//! own wrapper, the application's `Fact`), all about the same rental, customer, book and payment.

use std::marker::PhantomData;

use chrono::{DateTime, Duration, Utc};
use shared_events::{
    BookRented, BookReturned, PaymentApproved, PaymentEvent, PaymentRefunded, RentalCancelled,
    RentalEvent, ReturnReason,
};
use uuid::Uuid;

pub struct Story<E> {
    pub rental: Uuid,
    pub customer: Uuid,
    pub book: Uuid,
    pub payment: Uuid,
    pub at: DateTime<Utc>,
    event: PhantomData<E>,
}

impl<E: From<RentalEvent> + From<PaymentEvent>> Story<E> {
    pub fn new() -> Self {
        Self {
            rental: Uuid::now_v7(),
            customer: Uuid::now_v7(),
            book: Uuid::now_v7(),
            payment: Uuid::now_v7(),
            at: "2026-03-01T10:00:00Z".parse().unwrap(),
            event: PhantomData,
        }
    }

    pub fn rented(&self) -> E {
        RentalEvent::from(BookRented {
            rental_id: self.rental,
            book_id: self.book,
            user_id: self.customer,
            rental_fee: 450,
            payment_id: self.payment,
            rented_at: self.at,
            due_at: self.at + Duration::days(14),
        })
        .into()
    }

    pub fn cancelled(&self) -> E {
        RentalEvent::from(RentalCancelled {
            rental_id: self.rental,
            book_id: self.book,
            user_id: self.customer,
            payment_id: self.payment,
            cancelled_at: self.at + Duration::hours(1),
        })
        .into()
    }

    pub fn returned(&self) -> E {
        self.ended(Duration::days(3), ReturnReason::Returned)
    }

    pub fn expired(&self) -> E {
        self.ended(Duration::days(14), ReturnReason::Expired)
    }

    fn ended(&self, after: Duration, reason: ReturnReason) -> E {
        RentalEvent::from(BookReturned {
            rental_id: self.rental,
            book_id: self.book,
            user_id: self.customer,
            returned_at: self.at + after,
            reason,
        })
        .into()
    }

    pub fn approved(&self) -> E {
        PaymentEvent::from(PaymentApproved {
            payment_id: self.payment,
            rental_id: self.rental,
            user_id: self.customer,
            amount: 450,
            approved_at: self.at,
        })
        .into()
    }

    pub fn refunded(&self) -> E {
        PaymentEvent::from(PaymentRefunded {
            payment_id: self.payment,
            rental_id: self.rental,
            user_id: self.customer,
            amount: 450,
            refunded_at: self.at + Duration::hours(2),
        })
        .into()
    }
}
