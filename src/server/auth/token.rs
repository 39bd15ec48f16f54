//! API keys as callers hold them: `orca_<id>_<secret>`. The id names the stored row (it
//! is shown by `key list`); the secret is 32 random bytes in hex, of which only the
//! SHA-256 is stored. A secret this long needs no slow hash: guessing it is hopeless.

use sha2::{Digest, Sha256};

const PREFIX: &str = "orca_";
/// Hex digits of a key id.
const ID_LEN: usize = 12;
/// Hex digits of a secret.
const SECRET_LEN: usize = 64;

/// A newly made key: the id, the whole token (shown once), and the hash to store.
#[derive(Debug)]
pub struct NewToken {
    pub id: String,
    pub token: String,
    pub hash: Vec<u8>,
}

/// Makes a key with a random id and secret (from the operating system's generator).
pub fn generate() -> NewToken {
    let id = hex::encode(&uuid::Uuid::new_v4().as_bytes()[..ID_LEN / 2]);
    generate_with_id(&id)
}

/// Makes a key whose id is given (the server admin key's is `admin`).
pub fn generate_with_id(id: &str) -> NewToken {
    let secret = random_secret();
    NewToken {
        id: id.to_string(),
        token: format!("{PREFIX}{id}_{secret}"),
        hash: hash(&secret),
    }
}

/// 32 random bytes (from the operating system's generator, through UUIDv4) in hex: a
/// key's secret, or anything else that must not be guessed.
pub fn random_secret() -> String {
    let mut secret = [0u8; SECRET_LEN / 2];
    secret[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    secret[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    hex::encode(secret)
}

/// The id and the secret of a token, or None when it is not shaped as one of ours.
pub fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.rsplit_once('_')?;
    let well_formed = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && secret.len() == SECRET_LEN
        && secret.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then_some((id, secret))
}

pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Compares two hashes in time that does not depend on where they differ.
pub fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The token of a request: `Authorization: Bearer <token>`, as kubectl and curl send it.
/// Err when the header is present but not a bearer token.
pub fn bearer(value: &[u8]) -> Result<&str, &'static str> {
    let value = std::str::from_utf8(value).map_err(|_| "the Authorization header is not text")?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or("the Authorization header is not `Bearer <key>`")?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(
            "the Authorization header is not `Bearer <key>` (other schemes are not accepted)",
        );
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_token_parses_back_to_its_id_and_hash() {
        let new = generate();
        assert_eq!(new.id.len(), ID_LEN);
        let (id, secret) = parse(&new.token).expect("parses");
        assert_eq!(id, new.id);
        assert!(same(&hash(secret), &new.hash));
        assert!(!new.token.contains(&hex::encode(&new.hash)));
        let other = generate();
        assert_ne!(other.token, new.token);
        assert!(!same(&other.hash, &new.hash));
    }

    #[test]
    fn malformed_tokens_are_not_parsed() {
        let good = generate().token;
        for bad in [
            "",
            "orca_",
            "orca__",
            &good[..good.len() - 1],
            &good.replace("orca_", "oak_"),
            &format!("{good}0"),
            &format!("orca_a b_{}", "0".repeat(SECRET_LEN)),
        ] {
            assert!(parse(bad).is_none(), "{bad:?}");
        }
        assert!(parse(&format!("orca_admin_{}", "a".repeat(SECRET_LEN))).is_some());
    }

    #[test]
    fn bearer_takes_the_token_of_a_bearer_header_only() {
        assert_eq!(bearer(b"Bearer abc"), Ok("abc"));
        assert_eq!(bearer(b"bearer  abc "), Ok("abc"));
        assert!(bearer(b"Basic dXNlcjpwYXNz").is_err());
        assert!(bearer(b"abc").is_err());
        assert!(bearer(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn same_compares_whole_values() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
    }
}
