//! Identities, domain-separated hashing and signing (SPEC §4.1).
//!
//! Every hash in ieschain is a blake3 hash in `derive_key` mode with a context string naming
//! the kind of object ([`Domain`]). Every signature signs such a digest, so a signature made
//! over one kind of object can never be replayed as a signature over another kind.
//! Consensus checks use `verify_strict`, which rejects malleable signatures and small-order
//! keys; weak keys are refused when a key enters a registry ([`PublicKey::is_weak`]).

use std::fmt;

use bincode::{Decode, Encode};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use thiserror::Error;

/// The kinds of object that are hashed, each with its own blake3 `derive_key` context.
///
/// Adding a domain is a format change: the context strings are part of every digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Domain {
    /// A node's address, from its public key.
    Address,
    /// A record's signed content.
    Record,
    /// A private block header.
    PrivateHeader,
    /// A consortium block header.
    ConsortiumHeader,
    /// A relay block header.
    RelayHeader,
    /// A Merkle leaf.
    MerkleLeaf,
    /// An interior Merkle node.
    MerkleNode,
    /// An entry of a registry.
    RegistryEntry,
    /// The seed of an election draw.
    ElectionSeed,
    /// The genesis record of a data directory.
    Genesis,
    /// A transport envelope.
    Envelope,
    /// An admission credential (SPEC §6.1).
    Credential,
    /// Deterministic key derivation for built-in federations (SPEC §12 D2).
    NodeKey,
    /// The supervisor's key (SPEC §12 D2).
    SupervisorKey,
    /// A consortium's admission key, derived for the demo federations (SPEC §12 D13).
    AdmissionKey,
    /// A buyer's countersignature of a power settlement (SPEC §12 D6).
    Countersign,
    /// Data sold in a data trade (SPEC §6.3): its digest on the chain.
    Data,
    /// The payload of a transport envelope, hashed once however many envelopes carry it.
    EnvelopePayload,
}

impl Domain {
    /// The blake3 `derive_key` context string of this domain.
    pub const fn context(self) -> &'static str {
        match self {
            Domain::Address => "ieschain address v1",
            Domain::Record => "ieschain record v1",
            Domain::PrivateHeader => "ieschain private header v1",
            Domain::ConsortiumHeader => "ieschain consortium header v1",
            Domain::RelayHeader => "ieschain relay header v1",
            Domain::MerkleLeaf => "ieschain merkle leaf v1",
            Domain::MerkleNode => "ieschain merkle node v1",
            Domain::RegistryEntry => "ieschain registry entry v1",
            Domain::ElectionSeed => "ieschain election v1",
            Domain::Genesis => "ieschain genesis v1",
            Domain::Envelope => "ieschain envelope v2",
            Domain::Credential => "ieschain credential v1",
            Domain::NodeKey => "ieschain node key v1",
            Domain::SupervisorKey => "ieschain supervisor v1",
            Domain::AdmissionKey => "ieschain admission key v1",
            Domain::Countersign => "ieschain countersign v1",
            Domain::Data => "ieschain data v1",
            Domain::EnvelopePayload => "ieschain envelope payload v1",
        }
    }
}

/// A 32-byte blake3 digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Encode, Decode)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The all-zero hash: every "previous hash" that does not exist yet (SPEC §12 D2).
    pub const ZERO: Hash = Hash([0; 32]);

    /// Hashes `parts`, concatenated, in `domain`.
    pub fn of(domain: Domain, parts: &[&[u8]]) -> Hash {
        let mut hasher = blake3::Hasher::new_derive_key(domain.context());
        for part in parts {
            hasher.update(part);
        }
        Hash(*hasher.finalize().as_bytes())
    }

    /// Parses 64 hex digits, as `Display` prints a hash.
    pub fn from_hex(text: &str) -> Option<Hash> {
        let bytes = hex::decode(text).ok()?;
        Some(Hash(bytes.try_into().ok()?))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first eight hex digits, for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.short())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A node's address: the first 20 bytes of `derive_key("ieschain address v1", public key)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Encode, Decode)]
pub struct Address(pub [u8; 20]);

impl Address {
    /// The address of `key`.
    pub fn of(key: &PublicKey) -> Address {
        let digest = Hash::of(Domain::Address, &[&key.0]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&digest.0[..20]);
        Address(out)
    }

    /// Parses 40 hex digits.
    pub fn from_hex(text: &str) -> Option<Address> {
        let bytes = hex::decode(text).ok()?;
        Some(Address(bytes.try_into().ok()?))
    }

    /// The first eight hex digits, for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({})", self.short())
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// An ed25519 public key, as its 32 compressed bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Encode, Decode)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// This key's address.
    pub fn address(&self) -> Address {
        Address::of(self)
    }

    /// Whether the key is not a valid curve point, or is of small order. Such keys are
    /// refused at registration (`verify_strict` refuses them too).
    pub fn is_weak(&self) -> bool {
        VerifyingKey::from_bytes(&self.0)
            .map(|key| key.is_weak())
            .unwrap_or(true)
    }

    /// Verifies `signature` over `digest` with `verify_strict`.
    pub fn verify(&self, digest: &Hash, signature: &Signature) -> Result<(), SignatureError> {
        #[cfg(feature = "testing")]
        crate::tally::note(crate::tally::Step::Check, digest);
        let triple = (self.0, digest.0, signature.0);
        let memo = VERIFIED.with(|memo| memo.borrow().clone());
        if memo.as_ref().is_some_and(|m| m.passed(&triple)) {
            return Ok(());
        }
        self.verify_strict(digest, signature)?;
        if let Some(memo) = memo {
            memo.remember(triple);
        }
        Ok(())
    }

    /// [`PublicKey::verify`] for a signature checked once only (an envelope's): a memo
    /// hit is used up, so that envelopes, checked ahead of need and never again, do not
    /// crowd the records and blocks out of the memo (a restarted node checks its whole
    /// store again).
    pub fn verify_once(&self, digest: &Hash, signature: &Signature) -> Result<(), SignatureError> {
        #[cfg(feature = "testing")]
        crate::tally::note(crate::tally::Step::Check, digest);
        let triple = (self.0, digest.0, signature.0);
        let memo = VERIFIED.with(|memo| memo.borrow().clone());
        if memo.as_ref().is_some_and(|m| m.take(&triple)) {
            return Ok(());
        }
        self.verify_strict(digest, signature)
    }

    fn verify_strict(&self, digest: &Hash, signature: &Signature) -> Result<(), SignatureError> {
        let key = self.decompressed()?;
        let signature = ed25519_dalek::Signature::from_bytes(&signature.0);
        key.verify_strict(&digest.0, &signature)
            .map_err(|_| SignatureError::Invalid)
    }
}

/// How many verified signatures a [`VerificationMemo`] remembers.
const VERIFIED_MEMO: usize = 1 << 20;

/// A (key, digest, signature) triple that passed `verify_strict`.
type Verified = ([u8; 32], [u8; 32], [u8; 64]);

/// The signatures a [`VerificationMemo`] saw pass, in two generations: when the newer
/// holds half the memo's size, it becomes the older and the older is forgotten. So the
/// memo evicts gradually, oldest first, never all at once (clearing it whole made a long
/// simulation check everything again every few hundred thousand signatures).
#[derive(Debug, Default)]
struct Memo(std::sync::Mutex<[std::collections::HashSet<Verified>; 2]>);

impl Memo {
    fn passed(&self, triple: &Verified) -> bool {
        self.0
            .lock()
            .is_ok_and(|sets| sets.iter().any(|set| set.contains(triple)))
    }

    /// Whether `triple` passed, forgetting it.
    fn take(&self, triple: &Verified) -> bool {
        self.0.lock().is_ok_and(|mut sets| {
            let found = sets[0].remove(triple);
            sets[1].remove(triple) || found
        })
    }

    fn remember(&self, triple: Verified) {
        if let Ok(mut sets) = self.0.lock() {
            if sets[0].len() >= VERIFIED_MEMO / 2 {
                sets[1] = std::mem::take(&mut sets[0]);
            }
            sets[0].insert(triple);
        }
    }
}

thread_local! {
    /// The memo of this thread while a [`VerificationMemo`] is held; `None` otherwise.
    static VERIFIED: std::cell::RefCell<Option<std::sync::Arc<Memo>>> =
        const { std::cell::RefCell::new(None) };
}

/// While held, [`PublicKey::verify`] on this thread remembers the signatures that passed and
/// does not check them again.
///
/// The deterministic simulation holds one. It runs every node on one thread, so the same
/// record signature is otherwise checked once by each node that holds it (about ten times)
/// and again by the final chain audit. `verify_strict` is a pure function of the triple, so
/// the memo changes speed only: what is accepted or refused, and when, is unchanged, and no
/// node learns anything of another through it. Only passes are remembered, so a forged or
/// altered signature is always checked in full. A live federation in one process holds one
/// on its actor thread unless its configuration's `runtime.shared_verification` is off
/// (then every node pays for its own checks, as separate machines would); a node in a
/// process of its own has no other node to share with.
#[derive(Debug)]
#[must_use = "the memo is dropped, and switched off, at the end of the statement"]
pub struct VerificationMemo {
    _memo: std::sync::Arc<Memo>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl VerificationMemo {
    /// Switches the memo on for this thread until the returned guard is dropped.
    pub fn start() -> VerificationMemo {
        let memo = std::sync::Arc::new(Memo::default());
        VERIFIED.with(|cell| *cell.borrow_mut() = Some(memo.clone()));
        VerificationMemo {
            _memo: memo,
            _not_send: std::marker::PhantomData,
        }
    }
}

impl VerificationMemo {
    /// A handle on this memo that another thread can join with [`SharedMemo::join`]: the
    /// nodes of one process spread over several actor threads share one memo (issue 12).
    pub fn share(&self) -> SharedMemo {
        SharedMemo(self._memo.clone())
    }
}

impl Drop for VerificationMemo {
    fn drop(&mut self) {
        VERIFIED.with(|memo| *memo.borrow_mut() = None);
    }
}

/// A memo that threads other than its starter's may join: see [`VerificationMemo::share`].
#[derive(Clone, Debug)]
pub struct SharedMemo(std::sync::Arc<Memo>);

impl SharedMemo {
    /// Switches the shared memo on for this thread until the returned guard is dropped.
    pub fn join(&self) -> VerificationMemo {
        VERIFIED.with(|cell| *cell.borrow_mut() = Some(self.0.clone()));
        VerificationMemo {
            _memo: self.0.clone(),
            _not_send: std::marker::PhantomData,
        }
    }

    /// Switches the shared memo on for this thread for as long as the thread lives: for a
    /// worker thread that runs until its process stops (an actor thread), where no scope
    /// can hold a guard.
    pub fn join_for_good(&self) {
        VERIFIED.with(|cell| *cell.borrow_mut() = Some(self.0.clone()));
    }
}

/// How many decompressed keys a thread keeps.
const KEY_CACHE: usize = 4_096;

thread_local! {
    /// Decompressed keys, by their bytes. Decompressing a point costs about a quarter of a
    /// signature check, and a node checks the same few keys over and over. The cache holds
    /// pure results of a deterministic function, so it changes speed only: no node sees
    /// another's state through it, and nothing iterates it.
    static DECOMPRESSED: std::cell::RefCell<std::collections::HashMap<[u8; 32], VerifyingKey>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

impl PublicKey {
    /// The key as a curve point, from the thread's cache when it was seen before.
    fn decompressed(&self) -> Result<VerifyingKey, SignatureError> {
        DECOMPRESSED.with(|cache| {
            if let Some(key) = cache.borrow().get(&self.0) {
                return Ok(*key);
            }
            let key = VerifyingKey::from_bytes(&self.0).map_err(|_| SignatureError::BadKey)?;
            let mut cache = cache.borrow_mut();
            if cache.len() >= KEY_CACHE {
                cache.clear();
            }
            cache.insert(self.0, key);
            Ok(key)
        })
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(&self.0[..4]))
    }
}

/// An ed25519 signature, as its 64 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// An all-zero placeholder, for content not yet signed. It never verifies.
    pub const EMPTY: Signature = Signature([0; 64]);
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(&self.0[..4]))
    }
}

/// Why a signature check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// The public key is not a valid curve point.
    #[error("public key is not a valid ed25519 point")]
    BadKey,
    /// The signature does not verify under `verify_strict`.
    #[error("signature does not verify")]
    Invalid,
}

/// A node's signing key and its public half.
pub struct Keypair {
    signing: SigningKey,
    public: PublicKey,
    address: Address,
}

impl Keypair {
    /// The key pair whose secret is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Keypair {
        let signing = SigningKey::from_bytes(&seed);
        let public = PublicKey(signing.verifying_key().to_bytes());
        Keypair {
            address: public.address(),
            signing,
            public,
        }
    }

    /// A key derived from a federation seed and a label, so that a reopened data directory
    /// has the same keys (SPEC §12 D2). `domain` separates node, supervisor and admission keys.
    pub fn derive(domain: Domain, seed: u64, label: &str) -> Keypair {
        let secret = Hash::of(domain, &[&seed.to_be_bytes(), label.as_bytes()]);
        Keypair::from_seed(secret.0)
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        self.public
    }

    /// The address of the public key.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Signs a domain-separated digest.
    pub fn sign(&self, digest: &Hash) -> Signature {
        #[cfg(feature = "testing")]
        crate::tally::note(crate::tally::Step::Sign, digest);
        let signature = Signature(self.signing.sign(&digest.0).to_bytes());
        // A signature this thread has just made verifies (the keys are derived from seeds,
        // never weak): under a memo its first check is free, as any later one.
        VERIFIED.with(|memo| {
            if let Some(memo) = memo.borrow().as_ref() {
                memo.remember((self.public().0, digest.0, signature.0));
            }
        });
        signature
    }
}

impl Clone for Keypair {
    fn clone(&self) -> Self {
        Keypair::from_seed(self.signing.to_bytes())
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "Keypair({})", self.address.short())
    }
}

/// Verifies many (key, digest, signature) triples, each with `verify_strict`, and returns
/// the index of the first bad one. Acceptance is exactly `verify_strict`'s (SPEC §12 D6).
///
/// There is deliberately no batch fast path: D6 allows one only where it cannot accept what
/// `verify_strict` rejects, and ed25519-dalek's `verify_batch` can. Its equation is
/// cofactorless with 128-bit coefficients `z_i` derived from the batch, so a signer who puts
/// a torsion point `T` into `R` (`R = r·B + T`, `s = r + h·a`; not of small order, so a
/// small-order check does not catch it) gets a signature that `verify_strict` always
/// refuses but the batch accepts whenever `z_i·T = 0`: about half the time for `T` of order
/// 2, depending on the other signatures in the batch. Nodes that batch the same block
/// differently (a consortium lane, a relay lane) would disagree. Refusing every `R` and key
/// with a torsion component costs a scalar multiplication each, more than the batch saves.
/// `core/tests/signatures.rs` holds the adversarial case.
pub fn verify_all(items: &[(PublicKey, Hash, Signature)]) -> Result<(), (usize, SignatureError)> {
    for (index, (key, digest, signature)) in items.iter().enumerate() {
        key.verify(digest, signature).map_err(|e| (index, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With the memo held, what passed is remembered and what fails is still refused: a
    /// signature moved to another digest, or a flipped bit, is checked in full every time.
    #[test]
    fn verification_memo_changes_speed_only() {
        let key = Keypair::derive(Domain::NodeKey, 7, "source-1");
        let digest = Hash::of(Domain::Record, &[b"hello"]);
        let other = Hash::of(Domain::Record, &[b"other"]);
        let signature = key.sign(&digest);
        let mut flipped = signature;
        flipped.0[40] ^= 1;
        let memo = VerificationMemo::start();
        for _ in 0..2 {
            assert_eq!(key.public().verify(&digest, &signature), Ok(()));
            assert_eq!(
                key.public().verify(&other, &signature),
                Err(SignatureError::Invalid)
            );
            assert_eq!(
                key.public().verify(&digest, &flipped),
                Err(SignatureError::Invalid)
            );
        }
        let remembered = || {
            VERIFIED.with(|m| {
                m.borrow()
                    .as_ref()
                    .and_then(|m| m.0.lock().ok().map(|sets| sets[0].len() + sets[1].len()))
            })
        };
        assert_eq!(remembered(), Some(1));
        // A signature made under the memo is remembered as made; a check that uses it up
        // (an envelope's) forgets it, and checks in full the next time.
        let made = key.sign(&other);
        assert_eq!(remembered(), Some(2));
        assert_eq!(key.public().verify_once(&other, &made), Ok(()));
        assert_eq!(remembered(), Some(1));
        assert_eq!(key.public().verify_once(&other, &made), Ok(()));
        assert_eq!(
            key.public().verify_once(&digest, &flipped),
            Err(SignatureError::Invalid)
        );
        drop(memo);
        assert!(VERIFIED.with(|m| m.borrow().is_none()));
        assert_eq!(key.public().verify(&digest, &signature), Ok(()));
    }

    /// A memo shared with another thread is one memo: a signature made on the first is
    /// known to the second, and used up there for both; a forged one is refused on both.
    #[test]
    fn a_shared_memo_is_one_memo_across_threads() {
        let key = Keypair::derive(Domain::NodeKey, 7, "source-1");
        let digest = Hash::of(Domain::Record, &[b"hello"]);
        let memo = VerificationMemo::start();
        let signature = key.sign(&digest);
        let mut forged = signature;
        forged.0[3] ^= 1;
        let count = |m: &SharedMemo| m.0 .0.lock().map(|s| s[0].len() + s[1].len()).ok();
        let shared = memo.share();
        assert_eq!(count(&shared), Some(1));
        let public = key.public();
        let other_thread = shared.clone();
        let (used, refused) = std::thread::spawn(move || {
            let _joined = other_thread.join();
            (
                public.verify_once(&digest, &signature),
                public.verify_once(&digest, &forged),
            )
        })
        .join()
        .expect("the checking thread ends");
        assert_eq!(used, Ok(()));
        assert_eq!(refused, Err(SignatureError::Invalid));
        assert_eq!(
            count(&shared),
            Some(0),
            "used up on the other thread, for both"
        );
        drop(memo);
    }

    /// The memo forgets its oldest half when its newer half fills, never all at once.
    #[test]
    fn verification_memo_evicts_the_oldest_half() {
        let memo = Memo::default();
        let triple = |i: u32| {
            let mut key = [0u8; 32];
            key[..4].copy_from_slice(&i.to_le_bytes());
            (key, [0u8; 32], [0u8; 64])
        };
        let half = (VERIFIED_MEMO / 2) as u32;
        for i in 0..half {
            memo.remember(triple(i));
        }
        memo.remember(triple(half));
        assert!(memo.passed(&triple(0)), "the older half is still there");
        assert!(memo.passed(&triple(half)));
        for i in half + 1..2 * half + 1 {
            memo.remember(triple(i));
        }
        assert!(!memo.passed(&triple(0)), "the oldest half is gone");
        assert!(memo.passed(&triple(half + 1)));
    }

    #[test]
    fn sign_and_verify_round_trip() {
        let key = Keypair::derive(Domain::NodeKey, 7, "source-1");
        let digest = Hash::of(Domain::Record, &[b"hello"]);
        let signature = key.sign(&digest);
        assert_eq!(key.public().verify(&digest, &signature), Ok(()));
        let other = Hash::of(Domain::PrivateHeader, &[b"hello"]);
        assert_eq!(
            key.public().verify(&other, &signature),
            Err(SignatureError::Invalid),
            "a signature in one domain must not verify in another"
        );
    }

    #[test]
    fn derived_keys_are_stable_and_distinct() {
        let a = Keypair::derive(Domain::NodeKey, 1, "a");
        assert_eq!(
            a.public(),
            Keypair::derive(Domain::NodeKey, 1, "a").public()
        );
        assert_ne!(
            a.public(),
            Keypair::derive(Domain::NodeKey, 2, "a").public()
        );
        assert_ne!(
            a.public(),
            Keypair::derive(Domain::SupervisorKey, 1, "a").public()
        );
    }

    #[test]
    fn batch_verification_agrees_with_strict() {
        let items: Vec<_> = (0..8)
            .map(|i| {
                let key = Keypair::derive(Domain::NodeKey, 3, &format!("m{i}"));
                let digest = Hash::of(Domain::Record, &[&[i as u8]]);
                (key.public(), digest, key.sign(&digest))
            })
            .collect();
        assert_eq!(verify_all(&items), Ok(()));
        let mut bad = items.clone();
        bad[5].2 .0[10] ^= 1;
        assert_eq!(verify_all(&bad), Err((5, SignatureError::Invalid)));
    }

    #[test]
    fn hashes_and_addresses_parse_back_from_hex_and_refuse_garbage() {
        let hash = Hash::of(Domain::Record, &[b"x"]);
        assert_eq!(Hash::from_hex(&hash.to_string()), Some(hash));
        let address = Keypair::derive(Domain::NodeKey, 1, "x").address();
        assert_eq!(Address::from_hex(&address.to_string()), Some(address));
        for garbage in ["", "zz", "00", &"0".repeat(63), &"0".repeat(66)] {
            assert_eq!(Hash::from_hex(garbage), None, "{garbage:?}");
            assert_eq!(Address::from_hex(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn small_order_keys_are_weak() {
        // The identity point: a small-order key that registration must refuse.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(PublicKey(identity).is_weak());
        assert!(!Keypair::derive(Domain::NodeKey, 1, "x").public().is_weak());
    }
}
