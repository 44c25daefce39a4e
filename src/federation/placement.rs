//! Where a process runs its member nodes (issue 12): over several actix arbiters, each a
//! thread with its own event loop, so that the nodes of one process use every core. The
//! supervisor shares the first ([`Placement::start_supervisor`] says why).
//!
//! Nodes share nothing but messages (the transport's mailboxes are thread-safe) and the
//! store (whose writes are serialised per holder): placing them changes how fast they run,
//! never what they decide. A node keeps its arbiter for the life of the process, so a
//! restarted node runs where its previous incarnation ran.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use actix::{Actor, Addr, Arbiter, ArbiterHandle, Context};
use ieschain_actors::node::{NodeActor, MAILBOX};
use ieschain_actors::supervisor::SupervisorActor;
use ieschain_core::crypto::SharedMemo;
use ieschain_core::Address;

/// The node threads of a process, and which node runs on which.
///
/// Relay-capable members (the nodes whose heartbeats the supervisor judges by the clock,
/// and which serve as relays and backups) and plain members take turns on separate
/// arbiters when plain members are many: the relay-capable ones, with the supervisor, on
/// the first `lead_threads`, in proportion to their number (at least one), the plain ones
/// on the rest. An actix thread runs its ready actors in turn, so a relay that shared a
/// thread with 5,000 members waited for each of them to read its forwarded block before
/// its heartbeat went out, and the supervisor deposed it (issue 12: 3 to 8 elections in
/// each 10,000-member window). When the relay-capable members are many (the four-party
/// federation: 10 of 16), every node takes turns on every thread.
#[derive(Debug, Default)]
pub(crate) struct Placement {
    arbiters: Vec<ArbiterHandle>,
    /// The relay-capable members.
    leads: BTreeSet<Address>,
    /// How many of the arbiters, from the first, run the relay-capable members; all of
    /// them when it is every arbiter.
    lead_threads: usize,
    turns: Mutex<Turns>,
}

/// Each node's arbiter, by index, fixed at its first start, and how many nodes of each
/// kind were placed.
#[derive(Debug, Default)]
struct Turns {
    assigned: BTreeMap<Address, usize>,
    leads: usize,
    plain: usize,
}

impl Placement {
    /// No threads of its own: every node starts on the calling arbiter (the simulation,
    /// whose nodes share one thread and virtual time).
    pub(crate) fn here() -> Placement {
        Placement::default()
    }

    /// `threads` new arbiters of the current actix system, each with `memo` joined for
    /// good when there is one, for `members` members of which `leads` are relay-capable.
    /// The returned arbiters are the caller's to stop and join once the system stops.
    pub(crate) fn spawn(
        threads: usize,
        memo: Option<SharedMemo>,
        leads: BTreeSet<Address>,
        members: usize,
    ) -> (Placement, Vec<Arbiter>) {
        let threads = threads.max(1);
        let arbiters: Vec<Arbiter> = (0..threads).map(|_| Arbiter::new()).collect();
        if let Some(memo) = memo {
            for arbiter in &arbiters {
                let memo = memo.clone();
                // Queued ahead of any actor, so every check on that thread sees the memo.
                arbiter.spawn_fn(move || memo.join_for_good());
            }
        }
        let placement = Placement {
            arbiters: arbiters.iter().map(Arbiter::handle).collect(),
            lead_threads: lead_threads(threads, leads.len(), members),
            leads,
            turns: Mutex::new(Turns::default()),
        };
        (placement, arbiters)
    }

    /// How many node threads there are; 0 for [`Placement::here`].
    pub(crate) fn threads(&self) -> usize {
        self.arbiters.len()
    }

    /// Starts `node`, whose address is `address`, on its arbiter: the one it ran on
    /// before, or the next in turn. Callable from any thread with arbiters, and from an
    /// actix thread without. `None` when that arbiter has stopped (the system is going).
    pub(crate) fn start(&self, address: Address, node: NodeActor) -> Option<Addr<NodeActor>> {
        let Some(index) = self.index_of(address) else {
            return Some(node.start());
        };
        // What `Actor::start_in_arbiter` does, but telling whether the arbiter took it.
        let (tx, rx) = actix::dev::channel::channel(MAILBOX);
        let spawned = self.arbiters[index].spawn_fn(move || {
            let context = Context::with_receiver(rx);
            actix::spawn(context.into_future(node));
        });
        spawned.then(|| Addr::new(tx))
    }

    /// Starts the supervisor on the first node thread (on the calling arbiter without
    /// node threads). Not on a thread of its own: its failure detector judges the relays'
    /// heartbeats by the clock, and on its own thread it keeps time while the node
    /// threads, saturated (10,000 members' ticks, a flood of records), send them late; it
    /// then deposes live relays, and each election sends notices and catch-ups to
    /// thousands of members, which makes the threads later still. Sharing a node thread,
    /// it runs late when they do. Its own thread waits for control traffic (heartbeats,
    /// elections) to travel ahead of bulk (issue 12, item 4).
    pub(crate) fn start_supervisor(&self, supervisor: SupervisorActor) {
        match self.arbiters.first() {
            Some(arbiter) => {
                SupervisorActor::start_in_arbiter(arbiter, move |_| supervisor);
            }
            None => {
                supervisor.start();
            }
        }
    }

    /// The arbiter `address` runs on: the one it was given at its first start, or the
    /// next in turn among its kind's; `None` without arbiters.
    fn index_of(&self, address: Address) -> Option<usize> {
        let threads = self.arbiters.len();
        if threads == 0 {
            return None;
        }
        let mut turns = self
            .turns
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(index) = turns.assigned.get(&address) {
            return Some(*index);
        }
        let index = if self.lead_threads >= threads {
            turns.assigned.len() % threads
        } else if self.leads.contains(&address) {
            turns.leads += 1;
            (turns.leads - 1) % self.lead_threads
        } else {
            turns.plain += 1;
            self.lead_threads + (turns.plain - 1) % (threads - self.lead_threads)
        };
        turns.assigned.insert(address, index);
        Some(index)
    }
}

/// How many of `threads` arbiters run the `leads` relay-capable members of `members`:
/// their share of the threads, rounded up, at least one; every thread when that leaves
/// none for the plain members.
fn lead_threads(threads: usize, leads: usize, members: usize) -> usize {
    if threads < 2 || leads == 0 || members <= leads {
        return threads;
    }
    (threads * leads).div_ceil(members).clamp(1, threads)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nodes go round the arbiters in the order they first start, and keep theirs; without
    /// arbiters there is nowhere to go.
    #[test]
    fn nodes_take_turns_and_keep_their_thread() {
        assert_eq!(Placement::here().index_of(Address([1; 20])), None);
        let system = actix::System::new();
        // Relay-capable members are many here (5 of 7): everyone takes turns everywhere.
        let leads: BTreeSet<Address> = (0..5u8).map(|i| Address([i; 20])).collect();
        let (placement, arbiters) = system.block_on(async { Placement::spawn(3, None, leads, 7) });
        assert_eq!(placement.threads(), 3);
        let first: Vec<Option<usize>> = (0..7u8)
            .map(|i| placement.index_of(Address([i; 20])))
            .collect();
        let turns = [0, 1, 2, 0, 1, 2, 0].map(Some);
        assert_eq!(first, turns);
        // A restart, in any order, goes back where it ran.
        for i in [6u8, 2, 0, 5] {
            assert_eq!(placement.index_of(Address([i; 20])), turns[usize::from(i)]);
        }
        assert_eq!(
            placement.index_of(Address([9; 20])),
            Some(1),
            "the next in turn"
        );
        stop(arbiters);
    }

    /// With many plain members, the relay-capable ones take turns on their share of the
    /// threads (the first), the plain ones on the rest, each keeping its thread.
    #[test]
    fn relay_capable_members_keep_threads_of_their_own() {
        assert_eq!(lead_threads(2, 10, 16), 2, "four-party: all mixed");
        assert_eq!(lead_threads(2, 100, 10_000), 1);
        assert_eq!(lead_threads(4, 100, 10_000), 1);
        assert_eq!(lead_threads(4, 300, 1_000), 2);
        assert_eq!(lead_threads(1, 100, 10_000), 1);
        assert_eq!(lead_threads(3, 0, 10), 3);
        let system = actix::System::new();
        let leads: BTreeSet<Address> = (0..2u8).map(|i| Address([i; 20])).collect();
        let (placement, arbiters) =
            system.block_on(async { Placement::spawn(3, None, leads, 100) });
        let placed: Vec<Option<usize>> = (0..7u8)
            .map(|i| placement.index_of(Address([i; 20])))
            .collect();
        assert_eq!(placed, [0, 0, 1, 2, 1, 2, 1].map(Some));
        assert_eq!(placement.index_of(Address([1; 20])), Some(0), "kept");
        assert_eq!(
            placement.index_of(Address([9; 20])),
            Some(2),
            "a newcomer is plain"
        );
        stop(arbiters);
    }

    fn stop(arbiters: Vec<Arbiter>) {
        for arbiter in arbiters {
            arbiter.stop();
            let _ = arbiter.join();
        }
    }
}
