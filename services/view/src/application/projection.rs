//! The projection: every topic's events merged into the records the boards are read from. The
//! domain merges an event into its record whatever order events arrive in; this finds the record
//! an event belongs to and stores the result.

use shared_events::{BookEvent, PaymentEvent, RentalEvent};
use uuid::Uuid;

use super::ports::{ProjectionStore, StoreError};

/// An event the view merges, from whichever topic it came.
#[derive(Debug, Clone)]
pub enum Fact {
    /// book-management's news of a book (`book.events`).
    Book(BookEvent),
    /// rental's news of a rental (`rental.events`).
    Rental(RentalEvent),
    /// payment's news of a rental's payment (`payment.events`).
    Payment(PaymentEvent),
    /// A customer registered under this name (`UserRegistered`).
    Customer { customer_id: Uuid, name: String },
}

/// Merges a fact into the records it concerns.
pub async fn project<S: ProjectionStore>(store: &mut S, fact: Fact) -> Result<(), StoreError> {
    match fact {
        Fact::Book(event) => {
            let id = match &event {
                BookEvent::BookRegistered(e) => e.book_id,
                BookEvent::BookUpdated(e) => e.book_id,
                BookEvent::BookRetired(e) => e.book_id,
            };
            let mut record = store.book(id).await?;
            record.record(&event);
            store.save_book(&record).await
        }
        Fact::Rental(event) => {
            let (id, customer_id) = match &event {
                RentalEvent::BookRented(e) => (e.rental_id, e.user_id),
                RentalEvent::RentalCancelled(e) => (e.rental_id, e.user_id),
                RentalEvent::BookReturned(e) => (e.rental_id, e.user_id),
            };
            // The book board lists a book as soon as a rental names it.
            store.note_book(event.book_id()).await?;
            let mut record = store.rental(id, customer_id).await?;
            record.record(&event);
            store.save_rental(&record).await
        }
        Fact::Payment(event) => {
            let (id, customer_id) = match &event {
                PaymentEvent::PaymentApproved(e) => (e.rental_id, e.user_id),
                PaymentEvent::PaymentRefunded(e) => (e.rental_id, e.user_id),
            };
            let mut record = store.rental(id, customer_id).await?;
            record.record_payment(&event);
            store.save_rental(&record).await
        }
        Fact::Customer { customer_id, name } => store.name_customer(customer_id, &name).await,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use shared_events::BookRegistered;

    use super::*;
    use crate::domain::{BookRecord, PaymentStatus, RentalRecord, RentalStatus};

    /// The records in memory, as the Postgres adapter keeps them.
    #[derive(Default)]
    struct Memory {
        books: HashMap<Uuid, BookRecord>,
        rentals: HashMap<Uuid, RentalRecord>,
        customers: HashMap<Uuid, String>,
    }

    impl ProjectionStore for Memory {
        async fn note_book(&mut self, id: Uuid) -> Result<(), StoreError> {
            self.books
                .entry(id)
                .or_insert_with(|| BookRecord::unknown(id));
            Ok(())
        }

        async fn book(&mut self, id: Uuid) -> Result<BookRecord, StoreError> {
            self.note_book(id).await?;
            Ok(self.books[&id].clone())
        }

        async fn save_book(&mut self, book: &BookRecord) -> Result<(), StoreError> {
            self.books.insert(book.id, book.clone());
            Ok(())
        }

        async fn rental(
            &mut self,
            id: Uuid,
            customer_id: Uuid,
        ) -> Result<RentalRecord, StoreError> {
            Ok(self
                .rentals
                .entry(id)
                .or_insert_with(|| RentalRecord::new(id, customer_id))
                .clone())
        }

        async fn save_rental(&mut self, rental: &RentalRecord) -> Result<(), StoreError> {
            self.rentals.insert(rental.id, rental.clone());
            Ok(())
        }

        async fn name_customer(&mut self, id: Uuid, name: &str) -> Result<(), StoreError> {
            self.customers.insert(id, name.to_owned());
            Ok(())
        }
    }

    impl From<RentalEvent> for Fact {
        fn from(event: RentalEvent) -> Self {
            Self::Rental(event)
        }
    }

    impl From<PaymentEvent> for Fact {
        fn from(event: PaymentEvent) -> Self {
            Self::Payment(event)
        }
    }

    type Story = crate::domain::story::Story<Fact>;

    /// book-management's news that the story's book was registered as `title`.
    fn registered(story: &Story, title: &str) -> Fact {
        Fact::Book(
            BookRegistered {
                book_id: story.book,
                title: title.into(),
                author: "Octavia E. Butler".into(),
                rental_fee: 450,
            }
            .into(),
        )
    }

    #[tokio::test]
    async fn a_rental_and_its_payment_make_one_record_whichever_arrives_first() {
        let story = Story::new();
        let mut store = Memory::default();
        for fact in [story.refunded(), story.approved(), story.rented()] {
            project(&mut store, fact).await.unwrap();
        }
        assert_eq!(store.rentals.len(), 1);
        let record = &store.rentals[&story.rental];
        assert_eq!(record.customer_id, story.customer);
        assert_eq!(record.book_id, Some(story.book));
        assert_eq!(record.status, Some(RentalStatus::Rented));
        assert_eq!(record.payment_status, Some(PaymentStatus::Refunded));
        assert_eq!(record.rental_fee, Some(450));
    }

    #[tokio::test]
    async fn a_book_is_listed_as_soon_as_a_rental_names_it_and_described_when_its_own_event_comes()
    {
        let story = Story::new();
        let mut store = Memory::default();
        project(&mut store, story.rented()).await.unwrap();
        assert_eq!(store.books[&story.book], BookRecord::unknown(story.book));
        project(&mut store, registered(&story, "Kindred"))
            .await
            .unwrap();
        let details = store.books[&story.book].details.clone().unwrap();
        assert_eq!(details.title, "Kindred");
        // A rental naming it again keeps its details.
        project(&mut store, story.rented()).await.unwrap();
        assert_eq!(store.books[&story.book].details, Some(details));
    }

    #[tokio::test]
    async fn a_copy_of_an_event_changes_nothing() {
        let story = Story::new();
        let mut store = Memory::default();
        project(&mut store, story.rented()).await.unwrap();
        project(&mut store, story.approved()).await.unwrap();
        let (books, rentals) = (store.books.clone(), store.rentals.clone());
        project(&mut store, story.rented()).await.unwrap();
        project(&mut store, story.approved()).await.unwrap();
        assert_eq!((store.books, store.rentals), (books, rentals));
    }

    #[tokio::test]
    async fn a_customer_is_known_by_the_name_they_registered_with() {
        let mut store = Memory::default();
        let customer_id = Uuid::now_v7();
        let named = Fact::Customer {
            customer_id,
            name: "Ada".into(),
        };
        project(&mut store, named).await.unwrap();
        assert_eq!(store.customers[&customer_id], "Ada");
        assert!(store.rentals.is_empty() && store.books.is_empty());
    }
}
