use chrono::{DateTime, Utc};
use shared_events::UserRegistered;

use super::{Email, Name, Role, UserId};

/// A customer's or manager's account: who they are and how many books they have out. The
/// credentials travel beside it (`PasswordHash`), never inside, so an account can be shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: UserId,
    pub name: Name,
    pub email: Email,
    pub role: Role,
    /// Rented and not yet returned or cancelled, as `rental.events` tell.
    pub active_rentals: u32,
    pub created_at: DateTime<Utc>,
}

impl Account {
    /// A customer registers, and the fleet hears of it.
    pub fn register(name: Name, email: Email, now: DateTime<Utc>) -> (Self, UserRegistered) {
        let account = Self::open(name, email, Role::Customer, now);
        let event = UserRegistered {
            user_id: account.id.0,
            name: account.name.as_str().to_owned(),
            email: account.email.as_str().to_owned(),
        };
        (account, event)
    }

    /// The manager named by configuration. `UserRegistered` announces customers only, so this
    /// publishes nothing.
    pub fn manager(name: Name, email: Email, now: DateTime<Utc>) -> Self {
        Self::open(name, email, Role::Manager, now)
    }

    fn open(name: Name, email: Email, role: Role, now: DateTime<Utc>) -> Self {
        Self {
            id: UserId::generate(),
            name,
            email,
            role,
            active_rentals: 0,
            created_at: now,
        }
    }

    /// A book was rented by this account.
    pub fn rental_started(&mut self) {
        self.active_rentals = self.active_rentals.saturating_add(1);
    }

    /// A rental of this account was returned or cancelled. Returns false when none was counted
    /// (its start was never seen): the count stays at zero rather than going negative.
    pub fn rental_ended(&mut self) -> bool {
        match self.active_rentals.checked_sub(1) {
            Some(left) => {
                self.active_rentals = left;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ursula() -> (Name, Email) {
        (
            Name::parse("Ursula").unwrap(),
            Email::parse("Ursula@Example.org").unwrap(),
        )
    }

    #[test]
    fn a_registered_customer_is_announced_without_credentials() {
        let (name, email) = ursula();
        let now = Utc::now();
        let (account, event) = Account::register(name, email, now);
        assert_eq!(account.role, Role::Customer);
        assert_eq!(account.active_rentals, 0);
        assert_eq!(account.created_at, now);
        assert_eq!(
            event,
            UserRegistered {
                user_id: account.id.0,
                name: "Ursula".into(),
                email: "Ursula@Example.org".into(),
            }
        );
    }

    #[test]
    fn a_manager_is_a_manager() {
        let (name, email) = ursula();
        assert_eq!(
            Account::manager(name, email, Utc::now()).role,
            Role::Manager
        );
    }

    #[test]
    fn active_rentals_count_up_and_down_but_never_below_zero() {
        let (name, email) = ursula();
        let (mut account, _) = Account::register(name, email, Utc::now());
        account.rental_started();
        account.rental_started();
        assert_eq!(account.active_rentals, 2);
        assert!(account.rental_ended());
        assert!(account.rental_ended());
        assert_eq!(account.active_rentals, 0);
        assert!(!account.rental_ended(), "nothing was counted");
        assert_eq!(account.active_rentals, 0);
    }
}
