//! Join failures (SPEC §6.1): a bad credential, a duplicate key and a forged relay
//! signature are each rejected with a clear error and leave the registry unchanged; a
//! member down during a join fails it by the deadline, naming the member.

use std::time::Duration;

use ieschain::federation::{FederationError, JoinSpec};
use ieschain_core::message::{credential_digest, Envelope, Message};
use ieschain_core::record::Role;
use ieschain_core::registry::RegistryEntry;
use ieschain_core::{Audience, ChainId, Domain, Keypair, RecordBody, RecordContent};
use tokio::time::Instant;

use crate::support::*;

/// The registry entry of a newcomer with `key` called `name`, as the handle makes it.
fn entry_of(key: &Keypair, name: &str) -> RegistryEntry {
    RegistryEntry {
        address: key.address(),
        public_key: key.public(),
        name: name.to_string(),
        role: Role::User,
        relay_capable: false,
    }
}

/// The reason of a protocol error, or a panic saying what came instead.
fn reason(result: Result<ieschain::federation::JoinOutcome, FederationError>) -> String {
    match result {
        Err(FederationError::Protocol { reason, .. }) => reason,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// A join whose credential is signed by some key other than the load consortium's
/// admission key is refused by the relay with "bad credential" (and counted as such), and
/// no relay block registers the newcomer: the next load relay block keeps the registry
/// root it had before.
#[tokio::test]
async fn a_bad_credential_is_refused_and_the_registry_is_unchanged() {
    let (_dir, data, mut fed) = start();
    fed.ready().await;
    let relay = relay_of(&fed, LOAD).await;
    let root = registry_root(&*fed.store(), relay, LOAD);
    let name = "newcomer-bad-credential";
    let key = Keypair::derive(Domain::NodeKey, SEED, name);
    let forger = Keypair::derive(Domain::AdmissionKey, SEED, "not the admission key of load");
    let spec = JoinSpec {
        key: Some(key.clone()),
        credential: Some(forger.sign(&credential_digest(&entry_of(&key, name)))),
        ..JoinSpec::new("load", name)
    };
    let mark = fed.mark();
    let reason = reason(fed.handle.join(spec, DEADLINE).await);
    assert!(
        reason.contains("bad credential") && reason.contains("admission key of load"),
        "unclear error: {reason}"
    );
    fed.rejected(mark, relay, "bad_credential").await;
    assert_registry_unchanged(&mut fed, LOAD, root, key.address(), name, DATA_SELLER).await;
    shutdown_and_verify(fed, &data);
}

/// A newcomer that presents the key of a registered member under a new name is refused.
///
/// Through the handle, the join of "impostor" with load-school's key fails at once (the
/// key's address is a running node). The relay's own check is then driven with the raw
/// join request the impostor would send, with a valid admission credential for the
/// impostor's entry, signed with load-school's key (load-school is crashed first, so that
/// the envelope's seq disturbs no live sender): the relay counts it as `duplicate_key`.
/// Either way no relay block registers the impostor, and the registry root is unchanged.
#[tokio::test]
async fn a_duplicate_key_is_refused_and_the_registry_is_unchanged() {
    let (_dir, data, mut fed) = start();
    fed.ready().await;
    let relay = relay_of(&fed, LOAD).await;
    let root = registry_root(&*fed.store(), relay, LOAD);
    let key = fed.handle.key_of(BUYER).unwrap();
    let spec = JoinSpec {
        key: Some(key.clone()),
        ..JoinSpec::new("load", "impostor")
    };
    let err = fed
        .handle
        .join(spec, DEADLINE)
        .await
        .expect_err("a join with a registered member's key fails");
    assert!(
        err.to_string().contains("duplicate key"),
        "unclear error: {err}"
    );

    fed.handle.crash(BUYER).await.unwrap();
    let entry = entry_of(&key, "impostor");
    let admission = Keypair::derive(Domain::AdmissionKey, SEED, "load");
    let request = Message::JoinRequest {
        credential: admission.sign(&credential_digest(&entry)),
        entry,
    };
    let mark = fed.mark();
    fed.handle
        .inject(Envelope::seal(&key, relay, 0, 1_000_000, &request));
    let (hostile, detail) = fed.rejected(mark, relay, "duplicate_key").await;
    assert!(hostile && detail.contains("impostor"), "{detail}");
    assert_eq!(fed.handle.stats().rejected.get("duplicate_key"), Some(&1));
    assert_registry_unchanged(&mut fed, LOAD, root, key.address(), "impostor", DATA_SELLER).await;
    shutdown_and_verify(fed, &data);
}

/// A join application whose relay announcement is not signed by a relay of the
/// consortium is refused by the member it reaches, and counted as `forged_announcement`:
/// one announcement claims to be the load relay's but is signed by the applicant, another
/// is genuinely signed, but by a load member that is not relay capable. The member writes
/// no receipt, and no relay block registers either applicant.
#[tokio::test]
async fn a_forged_relay_signature_is_refused_and_the_registry_is_unchanged() {
    let (_dir, data, mut fed) = start();
    fed.ready().await;
    let relay = relay_of(&fed, LOAD).await;
    let root = registry_root(&*fed.store(), relay, LOAD);
    let member = fed.address(DATA_SELLER);
    let not_relay = fed.handle.key_of(BUYER).unwrap();
    let mark = fed.mark();
    let mut applicants = Vec::new();
    for (n, forge) in ["claims the relay", "signed by a member"]
        .iter()
        .enumerate()
    {
        let name = format!("forger-{n}");
        let key = Keypair::derive(Domain::NodeKey, SEED, &name);
        let entry = entry_of(&key, &name);
        let content = |author, body| RecordContent {
            author,
            seq: 1,
            created_at: now_ms(),
            audience: Audience::Own,
            body,
        };
        let announcement_body = RecordBody::JoinAnnouncement {
            entry: entry.clone(),
        };
        let announcement = if n == 0 {
            content(relay, announcement_body).sign(&key)
        } else {
            content(not_relay.address(), announcement_body).sign(&not_relay)
        };
        let application = content(key.address(), RecordBody::JoinApplication { entry }).sign(&key);
        let apply = Message::JoinApply {
            announcement,
            application,
        };
        fed.handle
            .inject(Envelope::seal(&key, member, 0, 1, &apply));
        applicants.push((key.address(), name, *forge));
    }
    fed.wait_until("the member to reject both announcements", |fed| {
        rejections(&fed.log[mark..], member, "forged_announcement") == 2
    })
    .await;
    assert_eq!(
        fed.handle.stats().rejected.get("forged_announcement"),
        Some(&2)
    );
    let receipts: Vec<_> = fed.log[mark..]
        .iter()
        .filter(|e| matches!(e, ieschain_core::node::Event::Step { step: 6, from, .. } if *from == member))
        .collect();
    assert!(
        receipts.is_empty(),
        "the member receipted a forged join: {receipts:?}"
    );
    for (address, name, forge) in &applicants {
        assert_registry_unchanged(&mut fed, LOAD, root, *address, name, DATA_SELLER).await;
        let store = fed.store();
        let receipted = chain_records(&*store, member, ChainId::Consortium(LOAD, member))
            .into_iter()
            .any(|r| matches!(r.content.body, RecordBody::JoinReceipt { newcomer, .. } if newcomer == *address));
        assert!(
            !receipted,
            "a receipt for the applicant whose announcement {forge}"
        );
    }
    shutdown_and_verify(fed, &data);
}

/// A member the relay heard from just before a join, then crashed, is on the list of
/// members whose receipts the join needs (D11); it never answers, so the join fails by
/// the federation's 10 s deadline, with an error naming it. The heartbeat here is 300 ms,
/// so the relay counts a member alive for 900 ms after it last heard from it.
#[tokio::test]
async fn a_member_down_during_a_join_fails_it_by_the_deadline_naming_the_member() {
    let (_dir, data, mut fed) = start_with(6, MAX_WAIT_MS, 300);
    fed.ready().await;
    fed.submit_acked(BUYER, external(LOAD), data_offer(1)).await;
    fed.handle.crash(BUYER).await.unwrap();
    let started = Instant::now();
    let reason = reason(
        fed.handle
            .join(JoinSpec::new("load", "newcomer-late"), DEADLINE)
            .await,
    );
    let took = started.elapsed();
    assert!(
        reason.contains("deadline") && reason.contains(BUYER),
        "the error does not name the member down: {reason}"
    );
    assert!(
        took >= Duration::from_millis(9_500) && took < DEADLINE,
        "the join failed after {took:?}, not by the 10 s deadline"
    );
    shutdown_and_verify(fed, &data);
}
