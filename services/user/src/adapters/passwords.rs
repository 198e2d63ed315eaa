//! Password hashes with Argon2id (RFC 9106), as PHC strings that carry their salt and cost.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use anyhow::Context;

use argon2::password_hash::{Output, ParamsString, PasswordHash as Phc, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand_core::OsRng;

use crate::application::{HashError, PasswordHasher};
use crate::domain::{Password, PasswordHash};

/// Argon2id with the crate's default cost (19 MiB, 2 passes, 1 lane: OWASP's recommendation).
/// Verifying uses the cost written in each hash.
///
/// Each hash takes its memory for as long as it runs, so hashes run on `workers` threads of
/// their own (one a CPU: more would only wait on each other), with a bounded queue in front;
/// beyond that the answer is [`HashError::Busy`] at once. A hash's memory goes back to the
/// system as the hash ends ([`return_large_blocks_on_free`]): the service holds `workers` ×
/// 19 MiB only while that many hashes run, and idles as small as the other services.
///
/// Checks (sign-ins) and new hashes (registrations) wait in queues of their own. A free worker
/// takes a check first, and at most `registration_workers` hash new passwords at once, so a
/// storm of registrations leaves the other workers to sign-ins.
#[derive(Clone)]
pub struct Argon2Hasher {
    params: Params,
    /// A hash of a password nobody knows, verified when no account matches so that an unknown
    /// email takes as long as a wrong password.
    stand_in: Arc<PasswordHash>,
    pool: Arc<Pool>,
    _closer: Arc<Closer>,
}

type Job = Box<dyn FnOnce() + Send>;

/// How many hashes run at once and how many more may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashingLimits {
    pub workers: usize,
    /// Checks that may wait for a worker.
    pub queue: usize,
    /// At most this many workers hash new passwords at once.
    pub registration_workers: usize,
    /// New passwords that may wait for a worker.
    pub registration_queue: usize,
}

impl Default for HashingLimits {
    /// One worker a CPU and a queue of four a worker for checks: a sign-in waits a few hashes
    /// at most. Half the workers (at least one) for new passwords, with as long a queue (a
    /// waiting job holds no hashing memory): with two CPUs, one always checks passwords,
    /// however many register.
    fn default() -> Self {
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        Self {
            workers,
            queue: 4 * workers,
            registration_workers: (workers / 2).max(1),
            registration_queue: 4 * workers,
        }
    }
}

/// The two queues and the workers that serve them.
struct Pool {
    lanes: Mutex<Lanes>,
    work: Condvar,
    limits: HashingLimits,
}

#[derive(Default)]
struct Lanes {
    checks: VecDeque<Job>,
    registrations: VecDeque<Job>,
    registrations_running: usize,
    closed: bool,
}

/// Which queue a job waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lane {
    Check,
    Registration,
}

impl Pool {
    fn start(limits: HashingLimits) -> anyhow::Result<Arc<Self>> {
        let pool = Arc::new(Self {
            lanes: Mutex::new(Lanes::default()),
            work: Condvar::new(),
            limits,
        });
        for worker in 0..limits.workers {
            let pool = pool.clone();
            std::thread::Builder::new()
                .name(format!("password-hash-{worker}"))
                .spawn(move || pool.serve())
                .context("cannot start a password hashing thread")?;
        }
        Ok(pool)
    }

    /// A worker's life: the next check, else the next registration while fewer than the limit
    /// run, until the hasher is dropped.
    fn serve(&self) {
        loop {
            let (job, lane) = {
                let Ok(mut lanes) = self.lanes.lock() else {
                    return;
                };
                loop {
                    if let Some(job) = lanes.checks.pop_front() {
                        break (job, Lane::Check);
                    }
                    if lanes.registrations_running < self.limits.registration_workers
                        && let Some(job) = lanes.registrations.pop_front()
                    {
                        lanes.registrations_running += 1;
                        break (job, Lane::Registration);
                    }
                    if lanes.closed {
                        return;
                    }
                    lanes = match self.work.wait(lanes) {
                        Ok(lanes) => lanes,
                        Err(_) => return,
                    };
                }
            };
            job();
            if lane == Lane::Registration {
                if let Ok(mut lanes) = self.lanes.lock() {
                    lanes.registrations_running -= 1;
                }
                // A registration that waited for this slot may go now.
                self.work.notify_all();
            }
        }
    }

    fn submit(&self, lane: Lane, job: Job) -> Result<(), HashError> {
        let mut lanes = self
            .lanes
            .lock()
            .map_err(|_| HashError::Failed(anyhow::anyhow!("the password hashing pool failed")))?;
        let (queue, room) = match lane {
            Lane::Check => (&mut lanes.checks, self.limits.queue),
            Lane::Registration => (&mut lanes.registrations, self.limits.registration_queue),
        };
        if queue.len() >= room {
            return Err(HashError::Busy);
        }
        queue.push_back(job);
        drop(lanes);
        self.work.notify_one();
        Ok(())
    }

    fn close(&self) {
        if let Ok(mut lanes) = self.lanes.lock() {
            lanes.closed = true;
        }
        self.work.notify_all();
    }
}

/// Stops the workers once the last hasher is gone.
struct Closer(Arc<Pool>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Argon2Hasher {
    /// `memory_kib`: Argon2's memory cost; `None` keeps the default (unit tests go lower).
    pub async fn new(memory_kib: Option<u32>) -> anyhow::Result<Self> {
        Self::bounded(memory_kib, HashingLimits::default()).await
    }

    pub async fn bounded(memory_kib: Option<u32>, limits: HashingLimits) -> anyhow::Result<Self> {
        anyhow::ensure!(limits.workers > 0, "at least one password hashing worker");
        anyhow::ensure!(
            limits.registration_workers > 0,
            "at least one worker for new passwords"
        );
        return_large_blocks_on_free();
        let params = match memory_kib {
            Some(kib) => Params::new(kib, Params::DEFAULT_T_COST, Params::DEFAULT_P_COST, None)
                .map_err(|e| anyhow::anyhow!("invalid Argon2 memory cost {kib} KiB: {e}"))?,
            None => Params::default(),
        };
        let pool = Pool::start(limits)?;
        let mut hasher = Self {
            params,
            stand_in: Arc::new(PasswordHash::new(String::new())),
            _closer: Arc::new(Closer(pool.clone())),
            pool,
        };
        // On a hashing thread too, so that its memory is one a worker keeps.
        let (params, secret) = (hasher.params.clone(), uuid::Uuid::new_v4().to_string());
        let stand_in = hasher
            .run(Lane::Registration, move || hash(&params, &secret))
            .await
            .map_err(anyhow::Error::new)??;
        hasher.stand_in = Arc::new(stand_in);
        Ok(hasher)
    }

    /// Runs `work` on a hashing thread once one is free for `lane`, or answers `Busy` at once
    /// when its queue is full.
    async fn run<T: Send + 'static>(
        &self,
        lane: Lane,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = answer.send(work());
        });
        self.pool.submit(lane, job)?;
        answered
            .await
            .map_err(|_| HashError::Failed(anyhow::anyhow!("a password hashing job was lost")))
    }
}

/// glibc gives a freed block back to the system only when it mapped it for that block alone, and
/// after the first such free it raises the size it maps for to that block's (up to 32 MiB): from
/// then on every 19 MiB hash would come from the heap and stay there. A fixed threshold turns that
/// adjustment off, so blocks of 1 MiB and more are always mapped alone and unmapped when freed.
/// (The cost, mapping and zeroing a hash's memory each time, is a few percent of the hash.)
fn return_large_blocks_on_free() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only tunes the allocator, and any threshold is a valid one.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Argon2 of `password` and `salt` into `out`, in memory of this hash's own.
fn argon2_into(
    argon2: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> Result<(), argon2::Error> {
    let mut blocks = vec![Block::default(); params.block_count()];
    argon2.hash_password_into_with_memory(password, salt, out, &mut blocks)
}

fn hash(params: &Params, password: &str) -> anyhow::Result<PasswordHash> {
    let failed = |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot hash a password: {e}");
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0; 64];
    let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(|e| failed(&e))?;
    let mut out = [0; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    argon2_into(&argon2, params, password.as_bytes(), raw_salt, &mut out)
        .map_err(|e| failed(&e))?;
    let phc = Phc {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| failed(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| failed(&e))?),
    };
    Ok(PasswordHash::new(phc.to_string()))
}

/// Whether `attempt` hashes to `hash`, by the algorithm and cost the hash names.
fn verify(attempt: &str, hash: &PasswordHash) -> bool {
    // The crate's errors are not `std::error::Error` without its `std` feature.
    fn text(e: impl std::fmt::Display) -> String {
        e.to_string()
    }
    let matches = || -> Result<bool, String> {
        let phc = Phc::new(hash.as_str()).map_err(text)?;
        let (Some(salt), Some(expected)) = (phc.salt, phc.hash) else {
            return Err("no salt or no hash".into());
        };
        let algorithm = Algorithm::try_from(phc.algorithm).map_err(text)?;
        let version = phc
            .version
            .map(Version::try_from)
            .transpose()
            .map_err(text)?
            .unwrap_or_default();
        let params = Params::try_from(&phc).map_err(text)?;
        let mut salt_bytes = [0; 64];
        let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(text)?;
        let mut out = vec![0; expected.len()];
        let argon2 = Argon2::new(algorithm, version, params.clone());
        argon2_into(&argon2, &params, attempt.as_bytes(), raw_salt, &mut out).map_err(text)?;
        // Output's equality takes the same time wherever the bytes differ.
        Ok(Output::new(&out).map_err(text)? == expected)
    };
    matches().unwrap_or_else(|e| {
        tracing::error!(error = %e, "a stored password hash cannot be checked");
        false
    })
}

impl PasswordHasher for Argon2Hasher {
    async fn hash(&self, password: Password) -> Result<PasswordHash, HashError> {
        let params = self.params.clone();
        Ok(self
            .run(Lane::Registration, move || hash(&params, password.expose()))
            .await??)
    }

    async fn verify(&self, attempt: String, hash: Option<PasswordHash>) -> Result<bool, HashError> {
        let (hash, known) = match hash {
            Some(hash) => (hash, true),
            None => ((*self.stand_in).clone(), false),
        };
        let matches = self
            .run(Lane::Check, move || verify(&attempt, &hash))
            .await?;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn password(raw: &str) -> Password {
        Password::parse(raw, "u@example.org").unwrap()
    }

    #[tokio::test]
    async fn a_hash_is_argon2id_salted_and_verifies_only_its_password() {
        let hasher = Argon2Hasher::new(Some(64)).await.unwrap();
        let first = hasher
            .hash(password("correct horse battery"))
            .await
            .unwrap();
        let second = hasher
            .hash(password("correct horse battery"))
            .await
            .unwrap();
        assert!(
            first.as_str().starts_with("$argon2id$v=19$m=64,t=2,p=1$"),
            "{}",
            first.as_str()
        );
        assert_ne!(first, second, "each hash has its own salt");
        assert!(!first.as_str().contains("correct horse"));
        assert!(
            hasher
                .verify("correct horse battery".into(), Some(first.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify("correct horse batterY".into(), Some(first))
                .await
                .unwrap()
        );
        assert!(
            !hasher.verify("anything".into(), None).await.unwrap(),
            "no account, no match"
        );
        assert!(
            !hasher
                .verify("x".into(), Some(PasswordHash::new("garbage".into())))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn beyond_the_workers_and_the_queue_a_check_is_refused_at_once() {
        let limits = HashingLimits {
            workers: 1,
            queue: 2,
            registration_workers: 1,
            registration_queue: 2,
        };
        // A cost high enough that 20 checks overlap.
        let hasher = Argon2Hasher::bounded(Some(8 * 1024), limits).await.unwrap();
        let checks = (0..20).map(|_| hasher.verify("attempt".into(), None));
        let outcomes = futures::future::join_all(checks).await;
        let busy = outcomes
            .iter()
            .filter(|o| matches!(o, Err(HashError::Busy)))
            .count();
        // Two waiting and, once the worker has taken the first, one running; the rest refused.
        assert!((16..=18).contains(&busy), "{busy} refused");
        assert!(outcomes.iter().all(|o| !matches!(o, Ok(true))));
        // Once they are done, there is room again.
        assert!(!hasher.verify("attempt".into(), None).await.unwrap());
    }

    #[tokio::test]
    async fn registrations_cannot_take_the_workers_sign_ins_need() {
        let limits = HashingLimits {
            workers: 2,
            queue: 8,
            registration_workers: 1,
            registration_queue: 5,
        };
        let hasher = Argon2Hasher::bounded(Some(8 * 1024), limits).await.unwrap();
        let registrations: Vec<_> = (0..8)
            .map(|_| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.hash(password("correct horse battery")).await })
            })
            .collect();
        tokio::task::yield_now().await;
        // Six hash one after another on one worker (two more are refused at once, whatever
        // the timing: five wait at most); the other worker checks the password meanwhile.
        let check = hasher.verify("attempt".into(), None);
        let all_registered = futures::future::join_all(registrations);
        tokio::pin!(all_registered);
        tokio::select! {
            biased;
            checked = check => assert!(!checked.unwrap()),
            _ = &mut all_registered => panic!("the check waited for every registration"),
        }
        let outcomes = all_registered.await;
        let busy = outcomes
            .iter()
            .filter(|o| matches!(o.as_ref().unwrap(), Err(HashError::Busy)))
            .count();
        assert!((2..=3).contains(&busy), "{busy} registrations refused");
    }

    #[tokio::test]
    async fn the_default_cost_is_owasps() {
        let hasher = Argon2Hasher::new(None).await.unwrap();
        assert!(
            hasher
                .stand_in
                .as_str()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            hasher.stand_in.as_str()
        );
        assert!(Argon2Hasher::new(Some(1)).await.is_err());
    }
}
