use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::ports::{EarningStore, StoreError};
use crate::domain::{Completion, Credit, EarningRate, Rental, Uncredited};

/// What happened to a rental, as far as points cares (read from `rental.events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RentalFact {
    /// It started, and this is what it cost (`BookRented`).
    Rented {
        rental_id: Uuid,
        customer_id: Uuid,
        rental_fee: u32,
    },
    /// It was cancelled (`RentalCancelled`).
    Cancelled { rental_id: Uuid },
    /// It completed (`BookReturned`): returned, or expired at its due date.
    Completed {
        rental_id: Uuid,
        book_id: Uuid,
        reason: Completion,
        at: DateTime<Utc>,
    },
}

/// What applying a fact did: every outcome is normal, none is an error to dead-letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A new rental is remembered until it ends.
    Remembered,
    /// The rental was known already; nothing changed.
    AlreadyKnown,
    /// The rental will never earn.
    Cancelled,
    /// The rental earned this.
    Credited(Credit),
    /// The rental ended without earning, and why.
    NotCredited(Uncredited),
    /// The fact names a rental points never saw start (its `BookRented` is older than what the
    /// topic keeps, say): without its fee there is nothing to credit, and no later try would
    /// find it.
    UnknownRental,
}

/// Earning points: each rental's facts applied to what points remembers of it.
#[derive(Debug, Clone, Copy)]
pub struct Earning {
    rate: EarningRate,
}

impl Earning {
    pub fn new(rate: EarningRate) -> Self {
        Self { rate }
    }

    pub async fn apply<S: EarningStore>(
        &self,
        store: &mut S,
        fact: RentalFact,
    ) -> Result<Applied, StoreError> {
        match fact {
            RentalFact::Rented {
                rental_id,
                customer_id,
                rental_fee,
            } => {
                // Never over a rental already known: a late copy must not undo its end.
                let rental = Rental::rented(rental_id, customer_id, rental_fee);
                Ok(if store.add_rental(&rental).await? {
                    Applied::Remembered
                } else {
                    Applied::AlreadyKnown
                })
            }
            RentalFact::Cancelled { rental_id } => {
                let Some(mut rental) = store.rental(rental_id).await? else {
                    return Ok(Applied::UnknownRental);
                };
                if !rental.cancel() {
                    return Ok(Applied::AlreadyKnown);
                }
                store.save_state(&rental).await?;
                Ok(Applied::Cancelled)
            }
            RentalFact::Completed {
                rental_id,
                book_id,
                reason,
                at,
            } => {
                let Some(mut rental) = store.rental(rental_id).await? else {
                    return Ok(Applied::UnknownRental);
                };
                let credit = match rental.complete(book_id, reason, at, self.rate) {
                    Ok(credit) => credit,
                    Err(why) => return Ok(Applied::NotCredited(why)),
                };
                store.save_state(&rental).await?;
                // The ledger's key is the rental: should the state and the ledger ever
                // disagree, the ledger still credits a rental once.
                if !store.credit(&credit).await? {
                    return Ok(Applied::NotCredited(Uncredited::AlreadyCredited));
                }
                Ok(Applied::Credited(credit))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::domain::{Points, RentalState};

    /// Rentals and credits in memory, as the Postgres adapter keeps them.
    #[derive(Default)]
    struct Memory {
        rentals: HashMap<Uuid, Rental>,
        ledger: HashMap<Uuid, Credit>,
        balances: HashMap<Uuid, Points>,
    }

    impl EarningStore for Memory {
        async fn rental(&mut self, id: Uuid) -> Result<Option<Rental>, StoreError> {
            Ok(self.rentals.get(&id).cloned())
        }

        async fn add_rental(&mut self, rental: &Rental) -> Result<bool, StoreError> {
            if self.rentals.contains_key(&rental.id) {
                return Ok(false);
            }
            self.rentals.insert(rental.id, rental.clone());
            Ok(true)
        }

        async fn save_state(&mut self, rental: &Rental) -> Result<(), StoreError> {
            self.rentals.insert(rental.id, rental.clone());
            Ok(())
        }

        async fn credit(&mut self, credit: &Credit) -> Result<bool, StoreError> {
            if self.ledger.contains_key(&credit.rental_id) {
                return Ok(false);
            }
            self.ledger.insert(credit.rental_id, credit.clone());
            let balance = self.balances.entry(credit.customer_id).or_default();
            *balance = balance.plus(credit.points);
            Ok(true)
        }
    }

    fn rented(rental_id: Uuid, customer_id: Uuid, rental_fee: u32) -> RentalFact {
        RentalFact::Rented {
            rental_id,
            customer_id,
            rental_fee,
        }
    }

    fn completed(rental_id: Uuid, reason: Completion) -> RentalFact {
        RentalFact::Completed {
            rental_id,
            book_id: Uuid::now_v7(),
            reason,
            at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn returned_and_expired_rentals_earn_and_a_cancelled_one_does_not() {
        let earning = Earning::new(EarningRate::DEFAULT);
        let mut store = Memory::default();
        let customer = Uuid::now_v7();
        let (returned, expired, cancelled) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        for (rental, fee) in [(returned, 300), (expired, 459), (cancelled, 1_000)] {
            let applied = earning
                .apply(&mut store, rented(rental, customer, fee))
                .await
                .unwrap();
            assert_eq!(applied, Applied::Remembered);
        }
        let applied = earning
            .apply(&mut store, completed(returned, Completion::Returned))
            .await
            .unwrap();
        assert!(matches!(applied, Applied::Credited(c) if c.points == Points::new(30)));
        let applied = earning
            .apply(&mut store, completed(expired, Completion::Expired))
            .await
            .unwrap();
        assert!(matches!(applied, Applied::Credited(c) if c.points == Points::new(45)));
        let cancel = RentalFact::Cancelled {
            rental_id: cancelled,
        };
        assert_eq!(
            earning.apply(&mut store, cancel.clone()).await.unwrap(),
            Applied::Cancelled
        );
        // Cannot happen (rental cancels only rented rentals), but would earn nothing.
        assert_eq!(
            earning
                .apply(&mut store, completed(cancelled, Completion::Returned))
                .await
                .unwrap(),
            Applied::NotCredited(Uncredited::Cancelled)
        );
        assert_eq!(store.balances[&customer], Points::new(75));
        assert_eq!(store.ledger.len(), 2);
        assert_eq!(store.rentals[&cancelled].state, RentalState::Cancelled);
    }

    #[tokio::test]
    async fn copies_of_facts_change_nothing() {
        let earning = Earning::new(EarningRate::DEFAULT);
        let mut store = Memory::default();
        let (rental, customer) = (Uuid::now_v7(), Uuid::now_v7());
        earning
            .apply(&mut store, rented(rental, customer, 300))
            .await
            .unwrap();
        let end = completed(rental, Completion::Returned);
        earning.apply(&mut store, end.clone()).await.unwrap();
        assert_eq!(
            earning.apply(&mut store, end).await.unwrap(),
            Applied::NotCredited(Uncredited::AlreadyCredited)
        );
        // A late copy of its start must not make it earn again.
        assert_eq!(
            earning
                .apply(&mut store, rented(rental, customer, 300))
                .await
                .unwrap(),
            Applied::AlreadyKnown
        );
        assert_eq!(
            earning
                .apply(&mut store, completed(rental, Completion::Expired))
                .await
                .unwrap(),
            Applied::NotCredited(Uncredited::AlreadyCredited)
        );
        assert_eq!(
            earning
                .apply(&mut store, RentalFact::Cancelled { rental_id: rental })
                .await
                .unwrap(),
            Applied::AlreadyKnown
        );
        assert_eq!(store.balances[&customer], Points::new(30));
    }

    #[tokio::test]
    async fn the_end_of_a_rental_never_seen_earns_nothing() {
        let earning = Earning::new(EarningRate::DEFAULT);
        let mut store = Memory::default();
        let unknown = Uuid::now_v7();
        for fact in [
            completed(unknown, Completion::Returned),
            RentalFact::Cancelled { rental_id: unknown },
        ] {
            assert_eq!(
                earning.apply(&mut store, fact).await.unwrap(),
                Applied::UnknownRental
            );
        }
        assert!(store.rentals.is_empty() && store.ledger.is_empty());
    }

    #[tokio::test]
    async fn the_rate_decides_the_share() {
        let earning = Earning::new(EarningRate::percent(25).unwrap());
        let mut store = Memory::default();
        let (rental, customer) = (Uuid::now_v7(), Uuid::now_v7());
        earning
            .apply(&mut store, rented(rental, customer, 333))
            .await
            .unwrap();
        earning
            .apply(&mut store, completed(rental, Completion::Returned))
            .await
            .unwrap();
        assert_eq!(store.balances[&customer], Points::new(83));
    }
}
