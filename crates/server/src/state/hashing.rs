//! The password-hashing cost new hashes are made with (a boot option; tests lower it).
//! Hashing itself is the `auth::password` feature's.
//!
//! Several nodes: every node should run with the same parameters; a hash made with other
//! parameters still verifies everywhere (they are part of the hash), so a mismatch only costs
//! rehashing, never a failed login.

/// argon2id cost parameters for new hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    /// 19 MiB and 7 passes: measured at about the time bcrypt cost 10 takes (~45 ms each on
    /// the 2-core dev machine, release build, in a one-off timing run), while keeping
    /// the memory a burst of concurrent logins can claim modest.
    fn default() -> Self {
        Argon2Params {
            memory_kib: 19456,
            iterations: 7,
            parallelism: 1,
        }
    }
}

impl Argon2Params {
    /// Parameters for a hashing cost on bcrypt's scale: the defaults from 10 up, and below
    /// that the cheapest setting argon2 allows, which is for tests only. In-process tests
    /// pass 4 directly; the binary gets there only through its explicit, loudly logged
    /// `--insecure-test-hashing` switch (a low `--bcrypt-cost` alone refuses to start).
    pub fn for_bcrypt_cost(cost: u32) -> Self {
        if cost >= 10 {
            Self::default()
        } else {
            Argon2Params {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
            }
        }
    }
}
