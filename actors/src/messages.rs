//! Every actix message of the federation, in one catalogue (STYLE: "one message
//! catalogue"). Each says who sends it to whom and when. Messages *between nodes* are not
//! here: nodes exchange only signed [`Envelope`]s of `ieschain_core::message::Message`
//! through the transport; these are the transport's delivery and the host's requests.

use actix::Message;
use ieschain_core::message::Envelope;
use ieschain_core::{Audience, RecordBody};

use crate::ActorError;

/// transport → node: an envelope addressed to it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Deliver(pub Envelope);

/// host → member node: write a record as this member. Answers with the record's seq once
/// it is in the member's open block (not yet acknowledged: watch the events for that).
#[derive(Debug, Message)]
#[rtype(result = "Result<u64, ActorError>")]
pub struct Write {
    /// Who the record is for.
    pub audience: Audience,
    /// What it says.
    pub body: RecordBody,
}

/// host → node: stop now, as a crash: no flush, no goodbye; the node's memory is gone.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Crash;

/// host → node: what the node is doing, for status displays and tests.
#[derive(Debug, Message)]
#[rtype(result = "NodeStatus")]
pub struct Status;

/// A node's answer to [`Status`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Whether it serves as relay.
    pub relay: bool,
    /// Whether it serves as backup.
    pub backup: bool,
    /// Its own consortium lane's height.
    pub lane_height: u64,
    /// Blocks submitted and not yet acknowledged.
    pub unacked: usize,
    /// Its restart count.
    pub incarnation: u32,
}
