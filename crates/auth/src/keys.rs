//! RSA signing keys, the fleet's one place for them: read from PEM (PKCS#8 or PKCS#1), generated,
//! written as PEM, published as a JWK and handed to jsonwebtoken. The user service signs tokens
//! with them; the test harness makes and reads its keys with them.
//!
//! On aws-lc-rs, the library jsonwebtoken signs with: its RSA is constant-time, where the `rsa`
//! crate's private-key operations leak timing (RUSTSEC-2023-0071, "Marvin").

use std::fmt;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::error::KeyRejected;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use jsonwebtoken::EncodingKey;
use pem_rfc7468::LineEnding;

use super::Jwk;

/// The smallest RSA key accepted (NIST SP 800-57's floor for RSA signatures), and the size of
/// generated keys.
pub const MIN_KEY_BITS: usize = 2048;

/// The largest RSA key aws-lc-rs signs with.
pub const MAX_KEY_BITS: usize = 8192;

const PKCS8_LABEL: &str = "PRIVATE KEY";
const PKCS1_LABEL: &str = "RSA PRIVATE KEY";
const PUBLIC_LABEL: &str = "PUBLIC KEY";

/// Why a key is refused. The messages never quote the key; they read after the key's origin
/// ("JWT_SIGNING_KEY is not a PEM RSA private key …").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("is not a PEM RSA private key (PKCS#8 or PKCS#1)")]
    NotRsaPrivateKey,
    #[error("is an RSA key of fewer than {min} bits; at least {min} bits are required", min = MIN_KEY_BITS)]
    TooShort,
    #[error("is an RSA key of more than {max} bits, which cannot sign", max = MAX_KEY_BITS)]
    TooLong,
    #[error("is not a consistent RSA private key")]
    Inconsistent,
    #[error("cannot generate an RSA key")]
    Generation,
}

impl From<KeyRejected> for KeyError {
    fn from(rejected: KeyRejected) -> Self {
        match rejected.description_() {
            "TooSmall" => Self::TooShort,
            "TooLarge" => Self::TooLong,
            "InconsistentComponents" => Self::Inconsistent,
            _ => Self::NotRsaPrivateKey,
        }
    }
}

/// An RSA private key that signs RS256 tokens. Its `Debug` names the key by its id only.
pub struct RsaPrivateKey {
    pair: KeyPair,
    /// PKCS#8 `PrivateKeyInfo`, DER, as aws-lc-rs writes it.
    pkcs8: Vec<u8>,
    /// The PKCS#1 `RSAPrivateKey` inside it: what jsonwebtoken signs with.
    pkcs1: Vec<u8>,
    jwk: Jwk,
}

impl RsaPrivateKey {
    /// A PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`), as `openssl genpkey` writes it and a
    /// Kubernetes Secret holds it, or PKCS#1 (`BEGIN RSA PRIVATE KEY`), as older tools wrote it.
    /// Surrounding whitespace is ignored; lines may end in LF or CRLF.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) = pem_rfc7468::decode_vec(pem.trim().as_bytes())
            .map_err(|_| KeyError::NotRsaPrivateKey)?;
        let pair = match label {
            PKCS8_LABEL => KeyPair::from_pkcs8(&der)?,
            PKCS1_LABEL => KeyPair::from_der(&der)?,
            _ => return Err(KeyError::NotRsaPrivateKey),
        };
        Self::from_pair(pair)
    }

    /// A fresh key of [`MIN_KEY_BITS`]. It takes a fraction of a second of CPU: async callers
    /// run it on a blocking thread.
    pub fn generate() -> Result<Self, KeyError> {
        let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generation)?;
        Self::from_pair(pair)
    }

    fn from_pair(pair: KeyPair) -> Result<Self, KeyError> {
        // aws-lc-rs refuses keys outside 2048..=8192 bits when it reads or makes them; checked
        // again here so that the floor is ours, not only the library's.
        if pair.public_modulus_len() * 8 < MIN_KEY_BITS {
            return Err(KeyError::TooShort);
        }
        let pkcs8 = pair
            .as_der()
            .map_err(|_| KeyError::Inconsistent)?
            .as_ref()
            .to_vec();
        let pkcs1 = der::pkcs1_in_pkcs8(&pkcs8)
            .ok_or(KeyError::Inconsistent)?
            .to_vec();
        let public = pair.public_key();
        let jwk = Jwk::rsa(
            public.modulus().big_endian_without_leading_zero(),
            public.exponent().big_endian_without_leading_zero(),
        );
        Ok(Self {
            pair,
            pkcs8,
            pkcs1,
            jwk,
        })
    }

    /// The modulus's size in bits.
    pub fn bits(&self) -> usize {
        self.pair.public_modulus_len() * 8
    }

    /// The key's id: the RFC 7638 thumbprint of its public half.
    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    /// The public half as the JWKS publishes it (modulus and exponent, `kid` its thumbprint).
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The key as jsonwebtoken signs RS256 with it.
    pub fn encoding_key(&self) -> EncodingKey {
        EncodingKey::from_rsa_der(&self.pkcs1)
    }

    /// PKCS#8 PEM (`BEGIN PRIVATE KEY`, LF line ends): what `JWT_SIGNING_KEY` holds.
    pub fn to_pkcs8_pem(&self) -> String {
        pem(PKCS8_LABEL, &self.pkcs8)
    }

    /// PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`, LF line ends), the older form some deployments keep.
    pub fn to_pkcs1_pem(&self) -> String {
        pem(PKCS1_LABEL, &self.pkcs1)
    }

    /// The public half as an X.509 `SubjectPublicKeyInfo` PEM (`BEGIN PUBLIC KEY`).
    pub fn public_key_pem(&self) -> String {
        let spki = self
            .pair
            .public_key()
            .as_der()
            .expect("aws-lc-rs encodes the public key of a key it holds");
        pem(PUBLIC_LABEL, spki.as_ref())
    }
}

impl fmt::Debug for RsaPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RsaPrivateKey(kid: {}, {} bits)",
            self.jwk.kid,
            self.bits()
        )
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    pem_rfc7468::encode_string(label, LineEnding::LF, der)
        .expect("a PEM label and DER of a key encode")
}

/// Just enough DER to take the PKCS#1 `RSAPrivateKey` out of a PKCS#8 `PrivateKeyInfo`
/// (RFC 5208 §5): jsonwebtoken signs with PKCS#1 DER and aws-lc-rs writes only PKCS#8. It reads
/// only what aws-lc-rs wrote from a key it had already parsed and checked, never the configured
/// input, which aws-lc-rs parses itself.
mod der {
    const SEQUENCE: u8 = 0x30;
    const INTEGER: u8 = 0x02;
    const OCTET_STRING: u8 = 0x04;
    /// The OID rsaEncryption (1.2.840.113549.1.1.1), tag and length included.
    const RSA_ENCRYPTION: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];

    /// `PrivateKeyInfo ::= SEQUENCE { version INTEGER, privateKeyAlgorithm AlgorithmIdentifier,
    /// privateKey OCTET STRING, attributes [0] IMPLICIT … OPTIONAL }`: the privateKey's contents,
    /// when the algorithm is rsaEncryption.
    pub(super) fn pkcs1_in_pkcs8(pkcs8: &[u8]) -> Option<&[u8]> {
        let (SEQUENCE, info, []) = tlv(pkcs8)? else {
            return None;
        };
        let (INTEGER, _version, rest) = tlv(info)? else {
            return None;
        };
        let (SEQUENCE, algorithm, rest) = tlv(rest)? else {
            return None;
        };
        if !algorithm.starts_with(RSA_ENCRYPTION) {
            return None;
        }
        let (OCTET_STRING, private_key, _attributes) = tlv(rest)? else {
            return None;
        };
        Some(private_key)
    }

    /// One DER tag-length-value (single-byte tags, definite lengths of up to four bytes): the
    /// tag, the contents, and what follows.
    fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let width = usize::from(first & 0x7f);
            if width == 0 || width > 4 || rest.len() < width {
                return None;
            }
            let (len, rest) = rest.split_at(width);
            let len = len
                .iter()
                .fold(0usize, |len, &byte| (len << 8) | usize::from(byte));
            (len, rest)
        };
        if rest.len() < len {
            return None;
        }
        let (contents, rest) = rest.split_at(len);
        Some((tag, contents, rest))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn short_and_long_lengths_are_read() {
            assert_eq!(
                tlv(&[0x04, 0x02, 0xaa, 0xbb, 0xcc]),
                Some((0x04, &[0xaa, 0xbb][..], &[0xcc][..]))
            );
            let mut long = vec![0x04, 0x82, 0x01, 0x00];
            long.extend([7; 256]);
            let (tag, contents, rest) = tlv(&long).unwrap();
            assert_eq!((tag, contents.len(), rest.len()), (0x04, 256, 0));
        }

        #[test]
        fn truncated_or_odd_encodings_are_refused_not_panicked_on() {
            for bad in [
                &[][..],
                &[0x30],
                &[0x30, 0x03, 0x02, 0x01],
                &[0x30, 0x80],
                &[0x30, 0x85, 1, 1, 1, 1, 1],
                &[0x30, 0x82, 0x01],
            ] {
                assert_eq!(tlv(bad), None, "{bad:02x?}");
                assert_eq!(pkcs1_in_pkcs8(bad), None, "{bad:02x?}");
            }
        }

        #[test]
        fn the_private_key_of_an_rsa_private_key_info_is_taken_and_nothing_else() {
            // SEQUENCE { INTEGER 0, SEQUENCE { rsaEncryption, NULL }, OCTET STRING { 01 02 } }
            let mut info = vec![0x02, 0x01, 0x00, 0x30, 0x0d];
            info.extend(RSA_ENCRYPTION);
            info.extend([0x05, 0x00, 0x04, 0x02, 0x01, 0x02]);
            let mut pkcs8 = vec![0x30, info.len() as u8];
            pkcs8.extend(&info);
            assert_eq!(pkcs1_in_pkcs8(&pkcs8), Some(&[0x01, 0x02][..]));

            let mut trailing = pkcs8.clone();
            trailing.push(0);
            assert_eq!(pkcs1_in_pkcs8(&trailing), None, "bytes after the key");
            let mut other_algorithm = pkcs8.clone();
            other_algorithm[16] ^= 1; // the OID's last byte
            assert_eq!(pkcs1_in_pkcs8(&other_algorithm), None, "not rsaEncryption");
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};

    use super::*;
    use crate::{Claims, JwkSet, TokenVerifier};

    /// The development key the project once published (its PKCS#8 PEM, as `openssl genpkey`
    /// wrote it), the same key as PKCS#1 (`openssl pkey -traditional`), and its kid as the `rsa`
    /// crate computed it when the key was published: keys that deployments already hold must
    /// load, in either form, with the same id.
    const PUBLISHED_PKCS8: &str = include_str!("../fixtures/published-dev-signing-key.pem");
    const PUBLISHED_PKCS1: &str = include_str!("../fixtures/published-dev-signing-key.pkcs1.pem");
    const PUBLISHED_KID: &str = "Qe7mHUt2QlB-68p05yqTO7yoM7MEfCynpqkuGi0h4EM";
    /// A 1024-bit key (`openssl genpkey -pkeyopt rsa_keygen_bits:1024`), only ever refused.
    const SHORT_PKCS8: &str = include_str!("../fixtures/too-short-1024-bit-key.pem");

    fn claims() -> Claims {
        let now = chrono::Utc::now().timestamp();
        Claims {
            sub: uuid::Uuid::new_v4().to_string(),
            roles: vec!["customer".to_owned()],
            scope: None,
            iss: "iss".to_owned(),
            aud: "aud".to_owned(),
            iat: now,
            exp: now + 60,
        }
    }

    fn sign(key: &RsaPrivateKey, claims: &Claims) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(key.kid().to_owned());
        jsonwebtoken::encode(&header, claims, &key.encoding_key()).unwrap()
    }

    #[test]
    fn a_published_key_loads_in_both_forms_with_the_id_it_was_published_with() {
        let pkcs8 = RsaPrivateKey::from_pem(PUBLISHED_PKCS8).unwrap();
        let pkcs1 = RsaPrivateKey::from_pem(PUBLISHED_PKCS1).unwrap();
        assert_eq!(pkcs8.kid(), PUBLISHED_KID);
        assert_eq!(pkcs1.kid(), PUBLISHED_KID);
        assert_eq!(pkcs8.bits(), 2048);
        assert_eq!(pkcs8.jwk().e, "AQAB");
        // Written back byte for byte as openssl wrote them: the PKCS#1 taken out of aws-lc-rs's
        // PKCS#8 is the key itself.
        assert_eq!(pkcs8.to_pkcs8_pem(), PUBLISHED_PKCS8);
        assert_eq!(pkcs1.to_pkcs8_pem(), PUBLISHED_PKCS8);
        assert_eq!(pkcs8.to_pkcs1_pem(), PUBLISHED_PKCS1);
    }

    #[test]
    fn a_generated_key_goes_round_both_pem_forms() {
        let key = RsaPrivateKey::generate().unwrap();
        assert_eq!(key.bits(), MIN_KEY_BITS);
        assert_eq!(key.jwk().e, "AQAB");
        let crlf = key.to_pkcs1_pem().replace('\n', "\r\n");
        for pem in [key.to_pkcs8_pem(), key.to_pkcs1_pem(), crlf] {
            let again = RsaPrivateKey::from_pem(&format!("\n  {pem}\n")).unwrap();
            assert_eq!(again.jwk(), key.jwk());
        }
        assert!(
            key.to_pkcs8_pem()
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        assert!(
            key.to_pkcs1_pem()
                .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
        );
        assert!(
            key.public_key_pem()
                .starts_with("-----BEGIN PUBLIC KEY-----\n")
        );
        assert_ne!(RsaPrivateKey::generate().unwrap().kid(), key.kid());
    }

    #[test]
    fn a_signed_token_verifies_with_the_published_jwk() {
        for key in [
            RsaPrivateKey::generate().unwrap(),
            RsaPrivateKey::from_pem(PUBLISHED_PKCS1).unwrap(),
        ] {
            let claims = claims();
            let token = sign(&key, &claims);

            // jsonwebtoken's own verifier, given the JWK's modulus and exponent.
            let jwk = key.jwk();
            let decoding = DecodingKey::from_rsa_components(&jwk.n, &jwk.e).unwrap();
            let mut validation = Validation::new(Algorithm::RS256);
            validation.set_audience(&["aud"]);
            let decoded = jsonwebtoken::decode::<Claims>(&token, &decoding, &validation).unwrap();
            assert_eq!(decoded.claims, claims);
            assert_eq!(decoded.header.kid.as_deref(), Some(key.kid()));

            // The fleet's verifier, given the JWKS.
            let jwks = JwkSet {
                keys: vec![jwk.clone()],
            };
            let verifier = TokenVerifier::new(&jwks, "iss", "aud").unwrap();
            assert_eq!(
                verifier.verify(&token).unwrap().user_id.to_string(),
                claims.sub
            );

            // Another key's JWK does not verify it.
            let other = RsaPrivateKey::generate().unwrap();
            let elsewhere = DecodingKey::from_rsa_components(&other.jwk().n, &other.jwk().e);
            assert!(
                jsonwebtoken::decode::<Claims>(&token, &elsewhere.unwrap(), &validation).is_err()
            );
        }
    }

    #[test]
    fn a_short_key_is_refused() {
        assert_eq!(
            RsaPrivateKey::from_pem(SHORT_PKCS8).unwrap_err(),
            KeyError::TooShort
        );
        assert_eq!(
            KeyError::TooShort.to_string(),
            "is an RSA key of fewer than 2048 bits; at least 2048 bits are required"
        );
    }

    #[test]
    fn anything_but_an_rsa_private_key_is_refused_without_quoting_it() {
        let key = RsaPrivateKey::generate().unwrap();
        let pkcs8_as_pkcs1 = key.to_pkcs8_pem().replace("PRIVATE KEY", "RSA PRIVATE KEY");
        for bad in [
            String::new(),
            "not a key".to_owned(),
            "-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----".to_owned(),
            key.public_key_pem(),
            pkcs8_as_pkcs1,
            // An EC P-256 key (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
            "-----BEGIN PRIVATE KEY-----\n\
             MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5NpaZTOOxrh429Mh\n\
             JJa2aKc5sHwcv+tBiIXROTMSu4ehRANCAATQ6CoYUVpKY8LAXB61Dcl+kOhSSBPX\n\
             pecDHYzS517coXhSFYQLMj99AwpeOk25EWntnljtTUI74eYJcHwS2udZ\n\
             -----END PRIVATE KEY-----"
                .to_owned(),
        ] {
            let err = RsaPrivateKey::from_pem(&bad).unwrap_err();
            assert_eq!(err, KeyError::NotRsaPrivateKey, "{bad}");
            assert!(!err.to_string().contains("c2VjcmV0"));
        }
    }

    #[test]
    fn debug_names_the_key_by_its_id_only() {
        let key = RsaPrivateKey::from_pem(PUBLISHED_PKCS8).unwrap();
        assert_eq!(
            format!("{key:?}"),
            format!("RsaPrivateKey(kid: {PUBLISHED_KID}, 2048 bits)")
        );
    }
}
