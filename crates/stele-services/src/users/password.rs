//! Password hashes: Argon2id (RFC 9106) in the PHC string format, from RustCrypto's `argon2`.
//!
//! **Why not EventStoreDB's algorithm.** EventStoreDB stores PBKDF2-HMAC-SHA1 with 1000
//! iterations (`Rfc2898PasswordHashAlgorithm.cs`): a GPU tries billions of such guesses a
//! second, so a leaked `$user-*` stream gives up weak passwords at once. Argon2id is
//! memory-hard (every guess needs its own [`ARGON2_MEMORY_KIB`] of memory, which is what
//! GPUs and ASICs lack) and is the first choice of OWASP's Password Storage Cheat Sheet and of
//! RFC 9106. The stored hashes are Stele's own; nothing but Stele reads them, so
//! compatibility does not require PBKDF2 (records carry `hashAlgorithm` for a migration).
//!
//! **Parameters**: OWASP's minimum for Argon2id, [`ARGON2_MEMORY_KIB`] = 19 MiB,
//! [`ARGON2_ITERATIONS`] = 2, [`ARGON2_PARALLELISM`] = 1, a [`SALT_BYTES`]-byte salt and a
//! 32-byte output: tens of milliseconds of one core per hash. The PHC string records them,
//! so verification uses the parameters a hash was made with and they can be raised later
//! without invalidating stored hashes. A stored hash asking for more than
//! [`MAX_VERIFY_MEMORY_KIB`] or [`MAX_VERIFY_ITERATIONS`] is not verified (a record is data:
//! it must not be able to make every login cost gigabytes).
//!
//! **Where it runs**: [`hash_on_pool`] and [`verify_on_pool`] run on the blocking pool
//! (`stele_cluster::blocking`), never on an async worker; the [`crate::users::Authenticator`]
//! also bounds how many run at once.
//!
//! **Salt**: [`new_salt`] draws from `stele_cluster::determinism::next_u64`: the OS-seeded
//! thread generator in production (`rand`'s `ThreadRng`, a ChaCha-based CSPRNG), the seeded
//! generator under the simulation, so a simulated run stays reproducible.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use super::error::UserError;
use super::record::{UserRecord, HASH_ALGORITHM_ARGON2ID};

/// Argon2id memory per hash, in KiB (OWASP: 19 MiB).
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes over the memory (OWASP: 2 with 19 MiB).
pub const ARGON2_ITERATIONS: u32 = 2;
/// Argon2id lanes (computed one after another: the crate's `parallel` feature is off).
pub const ARGON2_PARALLELISM: u32 = 1;
/// Bytes of salt per hash (RFC 9106 recommends 16).
pub const SALT_BYTES: usize = 16;
/// The longest password hashed or verified, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 4096;
/// The most memory a stored hash may ask of a verification, in KiB.
pub const MAX_VERIFY_MEMORY_KIB: u32 = 256 * 1024;
/// The most passes a stored hash may ask of a verification.
pub const MAX_VERIFY_ITERATIONS: u32 = 16;
/// The most lanes a stored hash may ask of a verification.
pub const MAX_VERIFY_PARALLELISM: u32 = 8;

/// What a new hash costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl HashCost {
    /// The production cost (the module docs).
    pub const RECOMMENDED: HashCost = HashCost {
        memory_kib: ARGON2_MEMORY_KIB,
        iterations: ARGON2_ITERATIONS,
        parallelism: ARGON2_PARALLELISM,
    };

    /// Argon2's smallest cost: for tests and the simulation only, never for real users.
    pub const MINIMAL: HashCost = HashCost {
        memory_kib: Params::MIN_M_COST,
        iterations: Params::MIN_T_COST,
        parallelism: Params::MIN_P_COST,
    };
}

/// A new hash: the PHC string and its salt (base64 without padding, as in the string).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashedPassword {
    pub hash: String,
    pub salt: String,
}

/// A fresh random salt (see the module docs for where the randomness comes from).
pub fn new_salt() -> [u8; SALT_BYTES] {
    let mut salt = [0u8; SALT_BYTES];
    for chunk in salt.chunks_mut(8) {
        let draw = stele_cluster::determinism::next_u64().to_le_bytes();
        chunk.copy_from_slice(&draw[..chunk.len()]);
    }
    salt
}

/// Hashes `password` with Argon2id at `cost` and `salt`. Blocking: tens of milliseconds.
pub fn hash_password(
    password: &str,
    cost: HashCost,
    salt: &[u8; SALT_BYTES],
) -> Result<HashedPassword, String> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!("the password is over {MAX_PASSWORD_BYTES} bytes"));
    }
    let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, None)
        .map_err(|e| format!("Argon2 parameters: {e}"))?;
    let salt = SaltString::encode_b64(salt).map_err(|e| format!("salt: {e}"))?;
    let hash = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| format!("hashing: {e}"))?;
    Ok(HashedPassword {
        hash: hash.to_string(),
        salt: salt.as_str().to_owned(),
    })
}

/// Whether `password` is the one `record` holds the hash of. False for a hash of another
/// algorithm, one that does not parse, or one whose parameters are over the bounds.
/// Blocking: as long as the hash was to make.
pub fn verify_password(password: &str, record: &UserRecord) -> bool {
    if record.hash_algorithm != HASH_ALGORITHM_ARGON2ID || password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(&record.hash) else {
        return false;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident() {
        return false;
    }
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if params.m_cost() > MAX_VERIFY_MEMORY_KIB
        || params.t_cost() > MAX_VERIFY_ITERATIONS
        || params.p_cost() > MAX_VERIFY_PARALLELISM
    {
        return false;
    }
    Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// [`hash_password`] with a [`new_salt`], on the blocking pool.
pub async fn hash_on_pool(password: String, cost: HashCost) -> Result<HashedPassword, UserError> {
    let salt = new_salt();
    match stele_cluster::blocking::spawn(move || hash_password(&password, cost, &salt)).await {
        Ok(Ok(hashed)) => Ok(hashed),
        Ok(Err(reason)) => Err(UserError::Invalid(reason)),
        Err(join) => Err(UserError::Internal(join.to_string())),
    }
}

/// [`verify_password`] on the blocking pool.
pub async fn verify_on_pool(password: String, record: UserRecord) -> Result<bool, UserError> {
    stele_cluster::blocking::spawn(move || verify_password(&password, &record))
        .await
        .map_err(|join| UserError::Internal(join.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record_with(hash: HashedPassword) -> UserRecord {
        UserRecord {
            login_name: "u".into(),
            full_name: String::new(),
            salt: hash.salt,
            hash: hash.hash,
            hash_algorithm: HASH_ALGORITHM_ARGON2ID.into(),
            disabled: false,
            groups: Vec::new(),
        }
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let hashed = hash_password("changeit", HashCost::MINIMAL, &new_salt()).unwrap();
        assert!(hashed.hash.starts_with("$argon2id$v=19$m=8,t=1,p=1$"));
        assert!(hashed.hash.contains(&hashed.salt));
        let record = record_with(hashed);
        assert!(verify_password("changeit", &record));
        assert!(!verify_password("changeiT", &record));
        assert!(!verify_password("", &record));
    }

    #[test]
    fn the_recommended_cost_is_in_the_hash() {
        let hashed = hash_password("p", HashCost::RECOMMENDED, &[7; SALT_BYTES]).unwrap();
        assert!(hashed.hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("p", &record_with(hashed)));
    }

    #[test]
    fn salts_differ_and_so_do_hashes() {
        let a = hash_password("p", HashCost::MINIMAL, &new_salt()).unwrap();
        let b = hash_password("p", HashCost::MINIMAL, &new_salt()).unwrap();
        assert_ne!(a.hash, b.hash);
    }

    #[test]
    fn other_algorithms_costly_hashes_and_garbage_do_not_verify() {
        let mut record = record_with(hash_password("p", HashCost::MINIMAL, &new_salt()).unwrap());
        record.hash_algorithm = "rfc2898-sha1".into();
        assert!(!verify_password("p", &record));
        record.hash_algorithm = HASH_ALGORITHM_ARGON2ID.into();
        record.hash = "$argon2id$v=19$m=4194304,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA".into();
        assert!(!verify_password("p", &record));
        record.hash = "not a hash".into();
        assert!(!verify_password("p", &record));
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert!(hash_password(&long, HashCost::MINIMAL, &new_salt()).is_err());
    }
}
