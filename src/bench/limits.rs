//! The machine's limits, measured by this binary before the federation runs (issue 6):
//! ed25519 `verify_strict` and batch verification on one core, signing, blake3, RocksDB
//! synced writes, and the in-process transport's round trip between two actors.
//!
//! Every signature is made before its timed loop: signing is the client's work (SPEC §12
//! D8). Each rate is the median of a few rounds, because the machine is shared.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, Context, Handler};
use anyhow::{anyhow, Context as _, Result};
use ieschain_actors::messages::Deliver;
use ieschain_actors::transport::{InProcess, Transport};
use ieschain_core::crypto::{Domain, Hash, Keypair, PublicKey, Signature};
use ieschain_core::message::{Envelope, Message};
use ieschain_core::{codec, Address};

/// Distinct signers in the signature fixtures: a relay block's worth.
const SIGNERS: usize = 64;
/// Signatures per signer in the fixtures.
const PER_SIGNER: usize = 8;
/// Signatures per `verify_batch` call.
const BATCH: usize = 64;
/// The RocksDB write batch of the issue: 1 MiB, as 16 values of 64 KiB.
const ROCKS_BATCH_BYTES: usize = 1 << 20;
const ROCKS_VALUE_BYTES: usize = 64 << 10;

/// What [`measure`] found.
#[derive(Clone, Debug, Default)]
pub struct Limits {
    /// `PublicKey::verify` (`verify_strict`, as every node calls it), per second, one core.
    pub verify_strict_per_s: f64,
    /// Signatures per second through `ed25519_dalek::verify_batch`, batches of 64.
    pub batch_verify_per_s: f64,
    /// `Keypair::sign` per second.
    pub sign_per_s: f64,
    /// blake3 (`Hash::of`) over 1 MiB, bytes per second.
    pub blake3_bytes_per_s: f64,
    /// Synced 1 MiB RocksDB write batches per second.
    pub rocks_appends_per_s: f64,
    /// The same in bytes per second.
    pub rocks_bytes_per_s: f64,
    /// The median synced write of one small (1 KiB) batch, ms: what one durable block costs.
    pub rocks_small_sync_ms: f64,
    /// The median in-process round trip between two actors, ms: seal, send, open and
    /// check an envelope, and the same back.
    pub round_trip_ms: f64,
}

/// Measures every limit. `quick` takes fewer and shorter rounds.
pub fn measure(dir: &Path, quick: bool) -> Result<Limits> {
    let (rounds, round) = if quick {
        (3, Duration::from_millis(100))
    } else {
        (5, Duration::from_millis(500))
    };
    let mut limits = signatures(rounds, round)?;
    limits.blake3_bytes_per_s = blake3_rate(rounds, round);
    let (appends, small) = rocks(dir, if quick { 8 } else { 40 })?;
    limits.rocks_appends_per_s = appends;
    limits.rocks_bytes_per_s = appends * ROCKS_BATCH_BYTES as f64;
    limits.rocks_small_sync_ms = small;
    limits.round_trip_ms = round_trip(if quick { 500 } else { 5_000 })?;
    Ok(limits)
}

/// Runs `body` (which does `n` operations) repeatedly for `round`, `rounds` times, and
/// returns the median rate per second.
fn rate(
    rounds: usize,
    round: Duration,
    n: usize,
    mut body: impl FnMut() -> Result<()>,
) -> Result<f64> {
    let mut rates = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let started = Instant::now();
        let mut done = 0usize;
        while started.elapsed() < round {
            body()?;
            done += n;
        }
        rates.push(done as f64 / started.elapsed().as_secs_f64());
    }
    Ok(median(&mut rates))
}

/// The median of `values` (0 when empty).
pub(crate) fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn signatures(rounds: usize, round: Duration) -> Result<Limits> {
    let items: Vec<(PublicKey, Hash, Signature)> = (0..SIGNERS)
        .flat_map(|i| {
            let key = Keypair::derive(Domain::NodeKey, 2026, &format!("bench-signer-{i}"));
            (0..PER_SIGNER).map(move |j| {
                let digest = Hash::of(Domain::Record, &[&(i as u64).to_be_bytes(), &[j as u8]]);
                (key.public(), digest, key.sign(&digest))
            })
        })
        .collect();
    for (key, digest, signature) in &items {
        key.verify(digest, signature)
            .map_err(|e| anyhow!("a fixture signature does not verify: {e}"))?;
    }
    let verify_strict_per_s = rate(rounds, round, items.len(), || {
        for (key, digest, signature) in &items {
            std::hint::black_box(key.verify(digest, signature))
                .map_err(|e| anyhow!("verify: {e}"))?;
        }
        Ok(())
    })?;

    // Batches of distinct signers, as ed25519-dalek's `verify_batch` takes them: the
    // signature-check ceiling where consensus may batch (SPEC §12 D6 allows it only with
    // a per-signature fallback; see `core::crypto::verify_all`).
    let keys: Vec<ed25519_dalek::VerifyingKey> = items
        .iter()
        .map(|(key, _, _)| ed25519_dalek::VerifyingKey::from_bytes(&key.0))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("fixture key: {e}"))?;
    let signatures: Vec<ed25519_dalek::Signature> = items
        .iter()
        .map(|(_, _, s)| ed25519_dalek::Signature::from_bytes(&s.0))
        .collect();
    let messages: Vec<&[u8]> = items.iter().map(|(_, d, _)| d.0.as_slice()).collect();
    let batch_verify_per_s = rate(rounds, round, items.len(), || {
        for start in (0..items.len()).step_by(BATCH) {
            let end = (start + BATCH).min(items.len());
            ed25519_dalek::verify_batch(
                &messages[start..end],
                &signatures[start..end],
                &keys[start..end],
            )
            .map_err(|e| anyhow!("verify_batch: {e}"))?;
        }
        Ok(())
    })?;

    let key = Keypair::derive(Domain::NodeKey, 2026, "bench-signer");
    let sign_per_s = rate(rounds, round, items.len(), || {
        for (_, digest, _) in &items {
            std::hint::black_box(key.sign(digest));
        }
        Ok(())
    })?;
    Ok(Limits {
        verify_strict_per_s,
        batch_verify_per_s,
        sign_per_s,
        ..Limits::default()
    })
}

fn blake3_rate(rounds: usize, round: Duration) -> f64 {
    let data: Vec<u8> = (0..1usize << 20).map(|i| (i * 31 % 251) as u8).collect();
    rate(rounds, round, data.len(), || {
        std::hint::black_box(Hash::of(Domain::Record, &[&data]));
        Ok(())
    })
    .unwrap_or(0.0)
}

/// Synced 1 MiB write batches per second (over `count` batches), and the median synced
/// write of a 1 KiB batch, ms, in a fresh RocksDB under `dir`.
fn rocks(dir: &Path, count: usize) -> Result<(f64, f64)> {
    let path = dir.join("rocks-limit");
    let db =
        rocksdb::DB::open_default(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    let value: Vec<u8> = (0..ROCKS_VALUE_BYTES)
        .map(|i| (i * 17 % 253) as u8)
        .collect();
    let mut key = 0u64;
    let mut batch_of = |bytes: usize| {
        let mut batch = rocksdb::WriteBatch::default();
        let mut left = bytes;
        while left > 0 {
            let n = left.min(value.len());
            key += 1;
            batch.put(key.to_be_bytes(), &value[..n]);
            left -= n;
        }
        batch
    };
    // One warm-up write: creating the WAL file is not part of the rate.
    db.write_opt(batch_of(ROCKS_BATCH_BYTES), &sync)?;
    let batches: Vec<_> = (0..count).map(|_| batch_of(ROCKS_BATCH_BYTES)).collect();
    let started = Instant::now();
    for batch in batches {
        db.write_opt(batch, &sync)?;
    }
    let appends = count as f64 / started.elapsed().as_secs_f64();
    let mut small = Vec::new();
    for _ in 0..count.max(20) {
        let batch = batch_of(1 << 10);
        let started = Instant::now();
        db.write_opt(batch, &sync)?;
        small.push(started.elapsed().as_secs_f64() * 1e3);
    }
    drop(db);
    let _ = std::fs::remove_dir_all(&path);
    Ok((appends, median(&mut small)))
}

/// One end of the round-trip measure: opens every envelope as a node does (signature
/// check, decode), and answers until `remaining` round trips are done.
struct Echo {
    key: Keypair,
    peer: Address,
    peer_key: PublicKey,
    transport: Arc<InProcess>,
    seq: u64,
    /// For the side that starts: round trips left, their times, and where to report.
    remaining: u64,
    sent_at: Option<Instant>,
    times: Vec<f64>,
    done: Option<std::sync::mpsc::Sender<Vec<f64>>>,
}

impl Echo {
    fn send(&mut self) {
        self.seq += 1;
        let message = Message::Replicated {
            epoch: self.seq,
            hash: Hash::ZERO,
        };
        self.transport
            .send(Envelope::seal(&self.key, self.peer, 0, self.seq, &message));
    }
}

impl Actor for Echo {
    type Context = Context<Self>;
}

impl Handler<Deliver> for Echo {
    type Result = ();

    fn handle(&mut self, Deliver(envelope): Deliver, _: &mut Context<Self>) {
        let genuine = envelope
            .digest()
            .is_some_and(|digest| self.peer_key.verify(&digest, &envelope.signature).is_ok());
        if !genuine || codec::decode::<Message>(&envelope.payload).is_err() {
            return;
        }
        match self.done.take() {
            None => self.send(),
            Some(done) => {
                if let Some(sent) = self.sent_at {
                    self.times.push(sent.elapsed().as_secs_f64() * 1e3);
                }
                self.remaining = self.remaining.saturating_sub(1);
                if self.remaining == 0 {
                    let _ = done.send(std::mem::take(&mut self.times));
                    actix::System::current().stop();
                    return;
                }
                self.done = Some(done);
                self.sent_at = Some(Instant::now());
                self.send();
            }
        }
    }
}

/// The median of `count` round trips between two actors over [`InProcess`], on an actix
/// system of its own (one thread, as the federation's), ms.
fn round_trip(count: u64) -> Result<f64> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("ieschain-bench-rtt".into())
        .spawn(move || {
            let system = actix::System::new();
            system.block_on(async move {
                let transport = Arc::new(InProcess::new());
                let a = Keypair::derive(Domain::NodeKey, 2026, "rtt-a");
                let b = Keypair::derive(Domain::NodeKey, 2026, "rtt-b");
                let echo = Echo {
                    key: b.clone(),
                    peer: a.address(),
                    peer_key: a.public(),
                    transport: transport.clone(),
                    seq: 0,
                    remaining: 0,
                    sent_at: None,
                    times: Vec::new(),
                    done: None,
                }
                .start();
                transport.register(b.address(), echo.recipient());
                let starter = Echo {
                    key: a.clone(),
                    peer: b.address(),
                    peer_key: b.public(),
                    transport: transport.clone(),
                    seq: 0,
                    remaining: count,
                    sent_at: None,
                    times: Vec::new(),
                    done: Some(tx),
                };
                let addr = Echo::create(|_| starter);
                transport.register(a.address(), addr.clone().recipient());
                // The first message: a "reply" from b starts the loop at a.
                let seq = 1;
                let message = Message::Replicated {
                    epoch: 0,
                    hash: Hash::ZERO,
                };
                transport.send(Envelope::seal(&b, a.address(), 0, seq, &message));
            });
            let _ = system.run();
        })?;
    let times = rx
        .recv_timeout(Duration::from_secs(60))
        .map_err(|_| anyhow!("the round-trip actors did not finish"))?;
    let _ = thread.join();
    let mut times = times;
    Ok(median(&mut times))
}
