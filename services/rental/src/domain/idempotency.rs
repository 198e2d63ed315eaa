/// A client's name for one rent request, from the `Idempotency-Key` header: the same rent sent
/// again with the same key (after a connection broke under it, say) gets the rental the first
/// one made instead of a second. One to 255 visible ASCII characters, such as a UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("Idempotency-Key must be 1 to 255 visible ASCII characters (a UUID, say)")]
pub struct InvalidIdempotencyKey;

impl IdempotencyKey {
    pub const MAX_LEN: usize = 255;

    pub fn parse(key: &str) -> Result<Self, InvalidIdempotencyKey> {
        let visible = |b: u8| b.is_ascii_graphic();
        if key.is_empty() || key.len() > Self::MAX_LEN || !key.bytes().all(visible) {
            return Err(InvalidIdempotencyKey);
        }
        Ok(Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_short_visible_ascii() {
        assert!(IdempotencyKey::parse("9f1c6d1e-2b7a-4c55-9a47-0c1f3e5d7b2a").is_ok());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_ok());
        for bad in ["", " ", "a b", "é", "tab\there", &"k".repeat(256)] {
            assert_eq!(
                IdempotencyKey::parse(bad),
                Err(InvalidIdempotencyKey),
                "{bad:?}"
            );
        }
    }
}
