use std::fmt;

use uuid::Uuid;

/// Why a value was refused, in words the person registering can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

fn refuse(message: impl Into<String>) -> ValueError {
    ValueError(message.into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub Uuid);

impl UserId {
    /// Time-ordered (UUIDv7), so accounts sort by when they were opened.
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a customer or manager is called: 1 to 100 characters, trimmed, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub const MAX: usize = 100;

    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let name = raw.trim();
        match name.chars().count() {
            0 => Err(refuse("name must not be empty")),
            n if n > Self::MAX => Err(refuse(format!(
                "name must be at most {} characters",
                Self::MAX
            ))),
            _ if name.chars().any(char::is_control) => {
                Err(refuse("name must not contain control characters"))
            }
            _ => Ok(Self(name.to_owned())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address, the name an account signs in with. Kept as written (trimmed); two
/// addresses with the same [`EmailKey`] are the same account.
#[derive(Debug, Clone)]
pub struct Email {
    written: String,
    key: EmailKey,
}

/// An address in its one canonical form: what lookup, uniqueness and the counting of failed
/// sign-ins compare. Computed here and stored beside the address, so that no database locale
/// decides which spellings are the same account.
///
/// The form is RFC 8265's case-mapped username profile, with compatibility forms folded too:
/// NFKC (full-width `Ｉ` is `I`), lower case, NFC. Then a dot above after `i` or `j` is dropped,
/// since those letters have a dot already (Unicode's Soft_Dotted): `İ` lowers to `i` + U+0307,
/// which looks and reads as `i`, so `İris@…` and `iris@…` are one account, whatever the server's
/// collation would say.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EmailKey(String);

impl EmailKey {
    pub fn of(address: &str) -> Self {
        use unicode_normalization::UnicodeNormalization;
        let lowered: String = address.nfkc().collect::<String>().to_lowercase();
        let mut key = String::with_capacity(lowered.len());
        for c in lowered.nfc() {
            if c == '\u{307}' && key.ends_with(['i', 'j']) {
                continue;
            }
            key.push(c);
        }
        Self(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Email {
    /// RFC 5321's limit on a forward path.
    pub const MAX: usize = 254;

    /// A plausible address: one `@`, something before it, a dotted domain after it, no spaces.
    /// Only a mail that arrives proves more, and none is sent.
    pub fn parse(raw: &str) -> Result<Self, ValueError> {
        let email = raw.trim();
        if email.is_empty() {
            return Err(refuse("email must not be empty"));
        }
        if email.chars().count() > Self::MAX {
            return Err(refuse(format!(
                "email must be at most {} characters",
                Self::MAX
            )));
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(refuse("email must not contain spaces"));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(refuse("email must contain an @, as in name@example.com"));
        };
        if domain.contains('@') {
            return Err(refuse("email must contain only one @"));
        }
        if local.is_empty() {
            return Err(refuse("email needs a name before the @"));
        }
        if !domain.contains('.') || domain.split('.').any(str::is_empty) {
            return Err(refuse(
                "email needs a domain with a dot after the @, as in example.com",
            ));
        }
        Ok(Self {
            written: email.to_owned(),
            key: EmailKey::of(email),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// The address as an identity: its canonical form.
    pub fn key(&self) -> &EmailKey {
        &self.key
    }

    /// What comes before the `@`, in canonical form.
    pub fn local_part(&self) -> String {
        local_part(self.key.as_str()).to_owned()
    }
}

fn local_part(email: &str) -> &str {
    email.split_once('@').map_or(email, |(local, _)| local)
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for Email {}

/// The most common passwords of at least ten characters in public breach lists: the ones a
/// length rule alone lets through. Compared without regard to case.
const COMMON_PASSWORDS: [&str; 20] = [
    "1234567890",
    "0987654321",
    "12345678910",
    "123456789a",
    "1q2w3e4r5t",
    "1qaz2wsx3edc",
    "qwertyuiop",
    "qwerty1234",
    "qwerty12345",
    "qwerty123456",
    "password12",
    "password123",
    "password1234",
    "password1!",
    "iloveyou123",
    "letmein123",
    "welcome123",
    "changeme123",
    "football123",
    "administrator",
];

/// A new password, as typed, that passed the rules. It only lives until it is hashed: never
/// stored, logged or shown (its `Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN: usize = 10;
    /// Far beyond any passphrase; it bounds the work a request can ask of the hasher.
    pub const MAX: usize = 1024;

    /// Checks a new password for the account of `email` (as typed, so the rules apply even when
    /// the address itself is refused). Leading and trailing spaces count: a password is taken
    /// exactly as typed.
    pub fn parse(raw: &str, email: &str) -> Result<Self, ValueError> {
        let length = raw.chars().count();
        if length < Self::MIN {
            return Err(refuse(format!(
                "password must be at least {} characters",
                Self::MIN
            )));
        }
        if length > Self::MAX {
            return Err(refuse(format!(
                "password must be at most {} characters",
                Self::MAX
            )));
        }
        let mut chars = raw.chars();
        let first = chars.next();
        if chars.all(|c| Some(c) == first) {
            return Err(refuse(
                "password must not be one character repeated; use a few unrelated words",
            ));
        }
        let lowered = raw.to_lowercase();
        let email = email.trim().to_lowercase();
        if lowered == email || (!email.is_empty() && lowered == local_part(&email)) {
            return Err(refuse("password must not be the email or its name part"));
        }
        if COMMON_PASSWORDS.contains(&lowered.as_str()) {
            return Err(refuse(
                "password is one of the most common passwords; choose one nobody would guess",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password as typed, for the hasher.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(..)")
    }
}

/// A password hash as stored: an Argon2id PHC string (`$argon2id$v=19$m=...`), which carries
/// its own salt and cost. Not secret like a password, but never shown either.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn new(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

/// What an account may do. Customers register themselves; managers are set up by configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Customer,
    Manager,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "CUSTOMER",
            Role::Manager => "MANAGER",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "CUSTOMER" => Some(Self::Customer),
            "MANAGER" => Some(Self::Manager),
            _ => None,
        }
    }

    /// The role as a token names it (the `roles` claim).
    pub fn claim(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Manager => "manager",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(Name::parse("  Ursula ").unwrap().as_str(), "Ursula");
        assert_eq!(Name::parse(" ").unwrap_err().0, "name must not be empty");
        assert!(
            Name::parse(&"é".repeat(100)).is_ok(),
            "characters, not bytes"
        );
        assert!(Name::parse(&"x".repeat(101)).is_err());
        assert!(Name::parse("Ur\u{7}sula").is_err());
    }

    #[test]
    fn plausible_addresses_are_accepted_as_written() {
        let email = Email::parse("  Ursula.Le-Guin+books@Example.org ").unwrap();
        assert_eq!(email.as_str(), "Ursula.Le-Guin+books@Example.org");
        assert_eq!(email.key().as_str(), "ursula.le-guin+books@example.org");
        assert_eq!(email.local_part(), "ursula.le-guin+books");
        assert_eq!(
            email,
            Email::parse("ursula.le-guin+BOOKS@example.ORG").unwrap()
        );
        assert!(Email::parse("a@b.co").is_ok());
    }

    #[test]
    fn spellings_of_one_address_share_one_key() {
        let key = |raw: &str| Email::parse(raw).unwrap().key().as_str().to_owned();
        // A dotted capital I, the Turkish spelling PostgreSQL's lower() maps to `i` under a
        // UTF-8 collation while Rust's lower case keeps the dot as a combining mark.
        assert_eq!(key("\u{130}ris@example.org"), "iris@example.org");
        assert_eq!(key("I\u{307}ris@example.org"), "iris@example.org");
        // Full-width letters and a composed or decomposed accent.
        assert_eq!(key("\u{ff29}RIS@example.org"), "iris@example.org");
        assert_eq!(
            key("Ren\u{e9}e@example.org"),
            key("rene\u{301}e@EXAMPLE.org")
        );
        // Different letters stay different: the dotless ı is not i, and a dot on another
        // letter is kept.
        assert_ne!(key("\u{131}ris@example.org"), "iris@example.org");
        assert_eq!(key("a\u{307}@example.org"), "\u{227}@example.org");
        assert_eq!(
            Email::parse("\u{130}RIS@example.org").unwrap(),
            Email::parse("iris@example.org").unwrap()
        );
    }

    #[test]
    fn implausible_addresses_are_refused_with_a_reason() {
        for (bad, reason) in [
            ("", "must not be empty"),
            ("ursula", "must contain an @"),
            ("ursula@example", "a domain with a dot"),
            ("ursula@example.", "a domain with a dot"),
            ("ursula@.example.org", "a domain with a dot"),
            ("ursula@example..org", "a domain with a dot"),
            ("@example.org", "a name before the @"),
            ("ur@sula@example.org", "only one @"),
            ("ur sula@example.org", "spaces"),
        ] {
            let err = Email::parse(bad).unwrap_err().0;
            assert!(err.contains(reason), "{bad:?}: {err}");
        }
        let long = format!("{}@example.org", "x".repeat(243));
        assert_eq!(long.len(), 255);
        assert!(Email::parse(&long).unwrap_err().0.contains("at most 254"));
        assert!(Email::parse(&long[1..]).is_ok());
    }

    #[test]
    fn a_password_needs_ten_characters() {
        let err = Password::parse("abc12", "u@example.org").unwrap_err().0;
        assert_eq!(err, "password must be at least 10 characters");
        assert!(Password::parse("tëst-pässw", "u@example.org").is_ok());
        assert!(Password::parse(&"ab".repeat(513), "u@example.org").is_err());
    }

    #[test]
    fn a_password_is_not_one_character_repeated() {
        let err = Password::parse("aaaaaaaaaaaa", "u@example.org")
            .unwrap_err()
            .0;
        assert!(err.contains("one character repeated"), "{err}");
        assert!(Password::parse("aaaaaaaaaaab", "u@example.org").is_ok());
    }

    #[test]
    fn a_password_is_not_the_email_or_its_name_part() {
        let email = "Ursula.LeGuin@example.org";
        for bad in ["ursula.leguin@example.org", "URSULA.LEGUIN"] {
            let err = Password::parse(bad, email).unwrap_err().0;
            assert!(err.contains("not be the email"), "{bad}: {err}");
        }
        assert!(
            Password::parse("ursula.leguin", "not-an-address").is_ok(),
            "an invalid address is reported on its own"
        );
    }

    #[test]
    fn a_common_password_is_refused_whatever_its_case() {
        for bad in ["password123", "QWERTYUIOP", "1q2w3e4r5t"] {
            let err = Password::parse(bad, "u@example.org").unwrap_err().0;
            assert!(err.contains("most common passwords"), "{bad}: {err}");
        }
        assert!(
            COMMON_PASSWORDS
                .iter()
                .all(|p| p.chars().count() >= Password::MIN),
            "shorter ones are refused by length already"
        );
    }

    #[test]
    fn a_password_never_shows_in_debug_output() {
        let password = Password::parse("correct horse battery", "u@example.org").unwrap();
        assert_eq!(format!("{password:?}"), "Password(..)");
        assert_eq!(password.expose(), "correct horse battery");
        let hash = PasswordHash::new("$argon2id$v=19$secret".into());
        assert_eq!(format!("{hash:?}"), "PasswordHash(..)");
    }

    #[test]
    fn roles_have_a_stored_and_a_claimed_name() {
        for role in [Role::Customer, Role::Manager] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::Manager.claim(), "manager");
        assert_eq!(Role::parse("customer"), None);
    }
}
