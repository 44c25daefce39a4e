//! The supervisor actor (SPEC §5): runs the [`Supervisor`] machine. It keeps its signed
//! election records on a private chain of its own, and rebuilds the elections from it on
//! restart.

use std::sync::Arc;

use actix::{Actor, AsyncContext, Context, Handler};
use ieschain_core::genesis::{Directory, Genesis};
use ieschain_core::message::{Inbox, Message};
use ieschain_core::node::supervisor::Supervisor;
use ieschain_core::node::{Event, Timing};
use ieschain_core::{AnyBlock, ChainId};

use crate::messages::{Crash, Deliver};
use crate::node::MAILBOX;
use crate::outbox::Outbox;

/// The supervisor node.
pub struct SupervisorActor {
    machine: Supervisor,
    inbox: Inbox,
    outbox: Outbox,
    directory: Arc<Directory>,
    tick_ms: u64,
}

impl std::fmt::Debug for SupervisorActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupervisorActor").finish()
    }
}

impl SupervisorActor {
    /// The supervisor of `genesis`.
    pub fn new(
        outbox: Outbox,
        genesis: &Genesis,
        directory: Arc<Directory>,
        timing: Timing,
    ) -> Self {
        SupervisorActor {
            machine: Supervisor::new(outbox.key.clone(), genesis, timing),
            inbox: Inbox::new(outbox.address()),
            outbox,
            directory,
            tick_ms: (timing.heartbeat_ms / 4).clamp(5, 50),
        }
    }

    fn recover(&mut self) {
        let chain = ChainId::Private(self.outbox.address());
        let mut from = 1;
        while let Ok(blocks) = self.outbox.store.range(chain, from, 256) {
            if blocks.is_empty() {
                break;
            }
            for block in &blocks {
                if let AnyBlock::Private(block) = block {
                    self.machine.recover(block);
                }
            }
            from += blocks.len() as u64;
        }
    }
}

impl SupervisorActor {
    fn tick(&mut self) {
        let effects = self.machine.tick(self.outbox.now());
        self.outbox.run(effects);
    }
}

impl Actor for SupervisorActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(MAILBOX);
        self.recover();
        self.outbox
            .transport
            .register(self.outbox.address(), ctx.address().recipient());
        ctx.run_interval(
            std::time::Duration::from_millis(self.tick_ms),
            |actor, _| actor.tick(),
        );
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.outbox.transport.unregister(&self.outbox.address());
    }
}

impl Handler<Deliver> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, Deliver(envelope): Deliver, _: &mut Self::Context) {
        // No late tick here, unlike a member node: the failure detector must read the
        // heartbeats already in its mailbox before it judges anyone silent.
        self.deliver(envelope);
    }
}

impl SupervisorActor {
    fn deliver(&mut self, envelope: ieschain_core::message::Envelope) {
        let directory = &self.directory;
        let machine = &self.machine;
        match self.inbox.accept(&envelope, |a| {
            directory
                .get(a)
                .map(|k| k.key)
                .or_else(|| machine.key_of(a))
        }) {
            Ok(Message::Resync { incarnation, seq }) => {
                self.outbox.resync(envelope.header.from, incarnation, seq);
            }
            Ok(message) => {
                let now = self.outbox.now();
                let effects = self.machine.deliver(envelope.header.from, message, now);
                self.outbox.run(effects);
            }
            Err(err) => {
                if let Some(resync) = self.inbox.resync_due(envelope.header.from, &err) {
                    self.outbox.send(envelope.header.from, &resync);
                }
                self.outbox.emit(&Event::Rejected {
                    node: self.outbox.address(),
                    kind: err.name(),
                    hostile: err.is_hostile(),
                    detail: err.to_string(),
                })
            }
        }
    }
}

impl Handler<Crash> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, _: Crash, ctx: &mut Self::Context) {
        actix::ActorContext::stop(ctx);
    }
}
