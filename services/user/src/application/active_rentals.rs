//! Each account's count of active rentals, which its owner and managers read with the account:
//! counted from `rental.events`, up when a rental starts and down when it ends.

use super::ports::{ActiveRentalStore, StoreError};
use crate::domain::UserId;

/// What happened to one of a customer's rentals (read from `rental.events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RentalFact {
    /// It started (`BookRented`).
    Started { customer: UserId },
    /// It ended: cancelled or returned (`RentalCancelled`, `BookReturned`).
    Ended { customer: UserId },
}

impl RentalFact {
    pub fn customer(&self) -> UserId {
        match *self {
            RentalFact::Started { customer } | RentalFact::Ended { customer } => customer,
        }
    }
}

/// What counting a rental did: every outcome is normal, none is an error to dead-letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// The customer now has this many active rentals.
    Active(u32),
    /// No account has the customer's id (a customer of another environment, say), and no later
    /// try would find one: nothing to count.
    UnknownAccount,
    /// A rental ended whose start was never counted: the count stays at zero rather than going
    /// negative, and nothing is written.
    EndNeverStarted,
}

/// Counts a rental's start or end on its customer's account.
pub async fn count_rental<S: ActiveRentalStore>(
    store: &mut S,
    fact: RentalFact,
) -> Result<Counted, StoreError> {
    let Some(mut account) = store.account(fact.customer()).await? else {
        return Ok(Counted::UnknownAccount);
    };
    match fact {
        RentalFact::Started { .. } => account.rental_started(),
        RentalFact::Ended { .. } => {
            if !account.rental_ended() {
                return Ok(Counted::EndNeverStarted);
            }
        }
    }
    store.save_active_rentals(&account).await?;
    Ok(Counted::Active(account.active_rentals))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use chrono::Utc;

    use super::*;
    use crate::domain::{Account, Email, Name};

    /// Accounts in memory, as the Postgres adapter keeps them; `writes` counts the saves.
    #[derive(Default)]
    struct Memory {
        accounts: HashMap<UserId, Account>,
        writes: usize,
    }

    impl ActiveRentalStore for Memory {
        async fn account(&mut self, id: UserId) -> Result<Option<Account>, StoreError> {
            Ok(self.accounts.get(&id).cloned())
        }

        async fn save_active_rentals(&mut self, account: &Account) -> Result<(), StoreError> {
            let stored = self
                .accounts
                .get_mut(&account.id)
                .expect("a loaded account");
            stored.active_rentals = account.active_rentals;
            self.writes += 1;
            Ok(())
        }
    }

    fn customer(store: &mut Memory) -> UserId {
        let (account, _) = Account::register(
            Name::parse("Ada").unwrap(),
            Email::parse("ada@example.com").unwrap(),
            Utc::now(),
        );
        let id = account.id;
        store.accounts.insert(id, account);
        id
    }

    #[tokio::test]
    async fn rentals_count_up_when_they_start_and_down_when_they_end() {
        let mut store = Memory::default();
        let customer = customer(&mut store);
        let started = RentalFact::Started { customer };
        let ended = RentalFact::Ended { customer };
        assert_eq!(
            count_rental(&mut store, started).await.unwrap(),
            Counted::Active(1)
        );
        assert_eq!(
            count_rental(&mut store, started).await.unwrap(),
            Counted::Active(2)
        );
        assert_eq!(
            count_rental(&mut store, ended).await.unwrap(),
            Counted::Active(1)
        );
        assert_eq!(store.accounts[&customer].active_rentals, 1);
    }

    #[tokio::test]
    async fn an_end_never_counted_leaves_zero_and_writes_nothing() {
        let mut store = Memory::default();
        let customer = customer(&mut store);
        assert_eq!(
            count_rental(&mut store, RentalFact::Ended { customer })
                .await
                .unwrap(),
            Counted::EndNeverStarted
        );
        assert_eq!(store.accounts[&customer].active_rentals, 0);
        assert_eq!(store.writes, 0);
    }

    #[tokio::test]
    async fn a_rental_of_an_unknown_account_counts_nowhere() {
        let mut store = Memory::default();
        let stranger = UserId::generate();
        for fact in [
            RentalFact::Started { customer: stranger },
            RentalFact::Ended { customer: stranger },
        ] {
            assert_eq!(
                count_rental(&mut store, fact).await.unwrap(),
                Counted::UnknownAccount
            );
        }
        assert!(store.accounts.is_empty());
        assert_eq!(store.writes, 0);
    }
}
