//! The member actor: an enterprise or a user, and the relay and backup duties it takes on
//! when elected (SPEC §3). It owns a [`Member`] machine and carries out its effects; the
//! machine makes every decision.
//!
//! On start it replays its own store into the machine, so a restarted node recovers from
//! its own storage and from nothing else. It ticks the machine every `tick_ms`, and drives
//! the workload generator, if it has one.

use std::sync::Arc;

use actix::{Actor, ActorContext, AsyncContext, Context, Handler};
use ieschain_core::genesis::{Directory, Genesis};
use ieschain_core::message::{Inbox, Message};
use ieschain_core::node::member::Member;
use ieschain_core::node::{Event, Timing};
use ieschain_core::{AnyBlock, ChainId, ConsortiumId};

use crate::messages::{Crash, Deliver, NodeStatus, Protocol, Status, Write, WriteSigned};
use crate::outbox::Outbox;
use crate::workload::Workload;
use crate::ActorError;

/// Mailbox capacity of a node: bounded, so that overload slows producers (SPEC §8).
pub const MAILBOX: usize = 16_384;

/// A member node.
pub struct NodeActor {
    member: Member,
    inbox: Inbox,
    outbox: Outbox,
    workload: Option<Workload>,
    tick_ms: u64,
    /// When the node last ticked, ms: see [`NodeActor::tick_if_late`].
    ticked_at: u64,
    /// Envelopes from unregistered senders in the current second, and which second
    /// (SPEC §12 D9: join messages only, and at a limited rate).
    unregistered: (u64, u32),
}

/// Envelopes a node accepts from unregistered senders per second.
pub const UNREGISTERED_PER_S: u32 = 32;

impl std::fmt::Debug for NodeActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeActor")
            .field("node", &self.member.address())
            .finish()
    }
}

impl NodeActor {
    /// A member node of `consortium`; `genesis` and `directory` are the federation's shared,
    /// read-only configuration.
    pub fn new(
        outbox: Outbox,
        consortium: ConsortiumId,
        genesis: Arc<Genesis>,
        directory: Arc<Directory>,
        timing: Timing,
        workload: Option<Workload>,
    ) -> Self {
        let member = Member::new(outbox.key.clone(), consortium, genesis, directory, timing);
        let tick_ms = (timing.member_max_wait_ms.min(timing.heartbeat_ms) / 4).clamp(5, 50);
        NodeActor {
            inbox: Inbox::new(outbox.address()),
            member,
            outbox,
            workload,
            tick_ms,
            ticked_at: 0,
            unregistered: (0, 0),
        }
    }

    /// This node is a newcomer that has not joined yet (SPEC §6.1).
    pub fn newcomer(mut self) -> Self {
        self.member.set_newcomer();
        self
    }

    /// Gives this grid member its line's capacity per delivery slot (D12).
    pub fn with_line(mut self, capacity: Option<u64>) -> Self {
        self.member.set_line_capacity(capacity);
        self
    }

    /// Replays the node's own store: relay lanes first, then its consortium copies and own
    /// lanes, each chain in height order.
    fn recover(&mut self) -> Result<(), ActorError> {
        self.member.recover_sealed(self.outbox.store.sealed()?);
        let mut chains = self.outbox.store.chains()?;
        chains.sort_by_key(|(chain, _)| match chain {
            ChainId::Relay(_) => 0,
            ChainId::Consortium(_, author) if *author != self.member.address() => 1,
            _ => 2,
        });
        for (chain, head) in chains {
            let mut from = 1;
            while from <= head.height {
                let blocks: Vec<AnyBlock> = self.outbox.store.range(chain, from, 256)?;
                if blocks.is_empty() {
                    break;
                }
                for block in &blocks {
                    self.member
                        .recover(block)
                        .map_err(|e| ActorError::Recover(e.to_string()))?;
                }
                from += blocks.len() as u64;
            }
        }
        Ok(())
    }

    fn tick(&mut self) {
        let now = self.outbox.now();
        self.ticked_at = now;
        if let Some(workload) = &mut self.workload {
            for (audience, body) in workload.due(now, self.member.consortium()) {
                let (_, effects) = self.member.write(audience, body, now);
                self.outbox.run(effects);
            }
        }
        let effects = self.member.tick(now);
        self.outbox.run(effects);
    }
}

impl NodeActor {
    /// Ticks now if the timer is a whole period late. An actix context drains its mailbox
    /// before it polls its timers, so a node whose mailbox never empties (fed from other
    /// threads as fast as it reads) would never tick: no heartbeat, no window flush, no
    /// resend, and its supervisor would depose a live relay. Called after each message.
    fn tick_if_late(&mut self) {
        if self.outbox.now().saturating_sub(self.ticked_at) >= 2 * self.tick_ms {
            self.tick();
        }
    }
}

impl Actor for NodeActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
        if let Err(err) = self.recover() {
            log::error!(
                "node {}: cannot recover: {err}",
                self.member.address().short()
            );
            self.outbox.emit(&Event::Rejected {
                node: self.member.address(),
                kind: "recover_failed",
                hostile: false,
                detail: err.to_string(),
            });
            ctx.stop();
            return;
        }
        self.outbox
            .transport
            .register(self.member.address(), ctx.address().recipient());
        ctx.run_interval(std::time::Duration::from_millis(self.tick_ms), |node, _| {
            node.tick()
        });
        self.tick();
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.outbox.transport.unregister(&self.member.address());
    }
}

impl Handler<Deliver> for NodeActor {
    type Result = ();

    fn handle(&mut self, Deliver(envelope): Deliver, _: &mut Self::Context) {
        self.deliver(envelope);
        self.tick_if_late();
    }
}

impl NodeActor {
    fn deliver(&mut self, envelope: ieschain_core::message::Envelope) {
        let member = &self.member;
        if member.key_of(&envelope.header.from).is_none() {
            let second = self.outbox.now() / 1000;
            if self.unregistered.0 != second {
                self.unregistered = (second, 0);
            }
            self.unregistered.1 += 1;
            if self.unregistered.1 > UNREGISTERED_PER_S {
                self.outbox.emit(&Event::Rejected {
                    node: self.member.address(),
                    kind: "rate_limited",
                    hostile: true,
                    detail: format!("unregistered sender {}", envelope.header.from),
                });
                return;
            }
        }
        match self.inbox.accept(&envelope, |a| member.key_of(a)) {
            Ok(Message::Resync { incarnation, seq }) => {
                self.outbox.resync(envelope.header.from, incarnation, seq);
            }
            Ok(message) => {
                let now = self.outbox.now();
                log::trace!(
                    "node {} <- {}: {}",
                    self.member.address().short(),
                    envelope.header.from.short(),
                    message.name()
                );
                let effects = self.member.deliver(envelope.header.from, message, now);
                self.outbox.run(effects);
            }
            Err(err) => {
                // What the refused envelope said, where it decodes, for the record.
                let what = ieschain_core::codec::decode::<ieschain_core::message::Message>(
                    &envelope.payload,
                )
                .map_or("undecodable", |m| m.name());
                let detail = format!("{err} ({what})");
                if let Some(resync) = self.inbox.resync_due(envelope.header.from, &err) {
                    self.outbox.send(envelope.header.from, &resync);
                }
                if err.is_hostile() {
                    log::warn!(
                        "node {}: rejected envelope: {detail}",
                        self.member.address().short()
                    );
                }
                self.outbox.emit(&Event::Rejected {
                    node: self.member.address(),
                    kind: err.name(),
                    hostile: err.is_hostile(),
                    detail,
                });
            }
        }
    }
}

impl Handler<Write> for NodeActor {
    type Result = Result<u64, ActorError>;

    fn handle(&mut self, write: Write, _: &mut Self::Context) -> Self::Result {
        let now = self.outbox.now();
        let (seq, effects) = self.member.write(write.audience, write.body, now);
        self.outbox.run(effects);
        self.tick_if_late();
        Ok(seq)
    }
}

impl Handler<WriteSigned> for NodeActor {
    type Result = Result<u64, ActorError>;

    fn handle(&mut self, write: WriteSigned, _: &mut Self::Context) -> Self::Result {
        let now = self.outbox.now();
        let (seq, effects) = self.member.write_signed(write.0, now)?;
        self.outbox.run(effects);
        self.tick_if_late();
        Ok(seq)
    }
}

impl Handler<Protocol> for NodeActor {
    type Result = Result<Option<ieschain_core::Hash>, ActorError>;

    fn handle(&mut self, request: Protocol, _: &mut Self::Context) -> Self::Result {
        let now = self.outbox.now();
        let member = &mut self.member;
        let (run, effects) = match request {
            Protocol::OfferPower {
                wh,
                price_per_kwh,
                slot,
            } => {
                let (offer, effects) = member.offer_power(wh, price_per_kwh, slot, now)?;
                (Some(offer), effects)
            }
            Protocol::BidPower { offer, wh } => (None, member.bid_power(offer, wh, now)?),
            Protocol::OfferData {
                description,
                price,
                data,
            } => {
                let (offer, effects) = member.offer_data(description, price, data, now)?;
                (Some(offer), effects)
            }
            Protocol::BuyData { offer } => (None, member.buy_data(offer, now)?),
            Protocol::Join { entry, credential } => {
                (None, member.start_join(entry, credential, now)?)
            }
            Protocol::TamperData { offer, data } => {
                member.tamper_data(offer, data);
                (None, Vec::new())
            }
        };
        self.outbox.run(effects);
        Ok(run)
    }
}

impl Handler<Crash> for NodeActor {
    type Result = ();

    fn handle(&mut self, _: Crash, ctx: &mut Self::Context) {
        self.outbox.transport.unregister(&self.member.address());
        ctx.stop();
    }
}

impl Handler<Status> for NodeActor {
    type Result = actix::MessageResult<Status>;

    fn handle(&mut self, _: Status, _: &mut Self::Context) -> Self::Result {
        actix::MessageResult(NodeStatus {
            relay: self.member.is_relay(),
            backup: self.member.is_backup(),
            lane_height: self.member.lane_head().height,
            unacked: self.member.unacked(),
            incarnation: self.outbox.incarnation,
            last_seq: self.member.last_seq(),
        })
    }
}
