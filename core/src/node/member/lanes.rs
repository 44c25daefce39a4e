//! The member's own lanes (SPEC §3, §4.3): it fills an open consortium block with its
//! records and closes it on an urgent record, when full, or after `member_max_wait` (SPEC
//! §12 D10); stores it; and submits it to its relay, resending it to each new relay until
//! it is acknowledged (D4). Meter readings go to its private chain the same way.

use crate::block::{ChainBlock, ConsortiumBlock, PrivateBlock};
use crate::codec;
use crate::crypto::{Address, Hash};
use crate::message::Message;
use crate::node::{Effect, Event};
use crate::record::{
    Audience, Record, RecordBody, RecordContent, RecordKind, Urgency, VerifiedRecord,
};

use super::{Member, SignedRecordError};

/// Bytes kept free in a consortium block for its header and vector lengths.
const BLOCK_OVERHEAD: usize = 512;

/// How many of its unacknowledged blocks a member has in flight to its relay at once.
/// Acknowledgements are cumulative, so a healthy relay never lets the window fill; a lost
/// relay costs at most this many resends per timer.
const SUBMIT_WINDOW: usize = 32;

/// Unanswered resend rounds back off to at most 2^this times the resend interval. A new
/// relay is not waited for: its election triggers a resend at once.
const RESEND_BACKOFF: u32 = 2;

impl Member {
    /// Writes a record of this member, from the workload or the host. Meter readings go to
    /// the private chain, everything else to the consortium lane. Returns the record's seq.
    pub fn write(&mut self, audience: Audience, body: RecordBody, now: u64) -> (u64, Vec<Effect>) {
        let mut effects = Vec::new();
        let record = self.write_record(audience, body, now, &mut effects);
        (record.content.seq, effects)
    }

    /// Writes a record its author (this member) signed before submission: checked once on
    /// entry ([`VerifiedRecord::check`], by the host's handle), so neither its signature
    /// nor its digest is computed again here. Its seq must be above every seq this member
    /// wrote, or it is a replay and refused (SPEC §4.2). Returns its seq.
    pub fn write_signed(
        &mut self,
        record: VerifiedRecord,
        now: u64,
    ) -> Result<(u64, Vec<Effect>), SignedRecordError> {
        let author = record.record().content.author;
        if author != self.me {
            return Err(SignedRecordError::NotAuthor {
                author,
                member: self.me,
            });
        }
        let seq = record.record().content.seq;
        if seq <= self.seq {
            return Err(SignedRecordError::Replay {
                seq,
                last: self.seq,
            });
        }
        if seq - self.seq > super::MAX_SEQ_GAP {
            return Err(SignedRecordError::SeqGap {
                seq,
                last: self.seq,
            });
        }
        self.seq = seq;
        let (record, digest) = record.into_parts();
        let mut effects = Vec::new();
        self.take_own_record(record, digest, now, &mut effects);
        Ok((seq, effects))
    }

    /// The seq of the last record this member wrote (0 before any): a record signed
    /// for it before submission takes a higher one.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// Writes a record of this member into its open block and returns it.
    pub(super) fn write_record(
        &mut self,
        audience: Audience,
        body: RecordBody,
        now: u64,
        effects: &mut Vec<Effect>,
    ) -> Record {
        self.seq += 1;
        let seq = self.seq;
        let (record, digest) = RecordContent {
            author: self.me,
            seq,
            created_at: now,
            audience,
            body,
        }
        .sign_digested(&self.key);
        self.take_own_record(record.clone(), digest, now, effects);
        record
    }

    /// Puts a record of this member, signed, with its digest, into its open block (or the
    /// open private block, for a meter reading), closing the block as its rules say.
    fn take_own_record(
        &mut self,
        record: Record,
        digest: Hash,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        self.note_own_record(&record);
        let capacity = self.genesis.capacities.consortium as usize;
        let size = codec::encoded_len(&record);
        if record.kind() == RecordKind::MeterReading {
            let used: usize = self.open_private.iter().map(codec::encoded_len).sum();
            if used + size + BLOCK_OVERHEAD > capacity {
                self.close_private(now, effects);
            }
            self.open_private.push(record);
            self.private_digests.push(digest);
            self.private_since.get_or_insert(now);
            return;
        }
        if self.open_bytes + size + BLOCK_OVERHEAD > capacity {
            self.close_lane(now, effects);
        }
        let urgent = record.urgency() == Urgency::Urgent;
        self.open.push(record);
        self.open_digests.push(digest);
        self.open_bytes += size;
        self.open_since.get_or_insert(now);
        if urgent {
            self.close_lane(now, effects);
        }
    }

    fn close_private(&mut self, now: u64, effects: &mut Vec<Effect>) {
        if self.open_private.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.open_private);
        let digests = std::mem::take(&mut self.private_digests);
        self.private_since = None;
        let head = self.private.head;
        let block = PrivateBlock::seal_digested(
            &self.key,
            head.height + 1,
            head.hash,
            now,
            records,
            &digests,
        );
        // Sealed here from records signed here: not checked again (issue 12).
        if self.private.append_sealed_here(&block).is_ok() {
            let event = Event::Recorded {
                member: self.me,
                height: block.height(),
                first_seq: block.records.first().map_or(0, |r| r.content.seq),
                last_seq: block.records.last().map_or(0, |r| r.content.seq),
                at: now,
            };
            effects.push(Effect::Persist(vec![block.into()]));
            effects.push(Effect::Emit(event));
        }
    }

    fn close_lane(&mut self, now: u64, effects: &mut Vec<Effect>) {
        if self.open.is_empty() {
            return;
        }
        let records = std::mem::take(&mut self.open);
        let digests = std::mem::take(&mut self.open_digests);
        self.open_bytes = 0;
        self.open_since = None;
        let head = self.lane.head;
        let block = ConsortiumBlock::seal_digested(
            &self.key,
            self.consortium,
            head.height + 1,
            head.hash,
            now,
            records,
            &digests,
        );
        // Sealed here from records signed here: not checked again (issue 12).
        if let Err(err) = self.lane.append_sealed_here(&block) {
            effects.push(self.rejected("own_block", false, err.to_string()));
            return;
        }
        effects.push(Effect::Persist(vec![block.clone().into()]));
        if self.unacked.is_empty() {
            self.next_resend = now + self.resend_ms();
        }
        self.unacked.insert(block.height(), block);
        self.submit_window(false, effects);
    }

    /// Sends unacknowledged blocks to the relay, lowest first, while fewer than
    /// [`SUBMIT_WINDOW`] are in flight. `again` starts a new round (a resend timer, a new
    /// relay): everything unacknowledged counts as not sent. An acknowledgement frees room
    /// in the window, so after an outage the backlog follows at the pace of the acks, and
    /// an overloaded relay slows its members (backpressure) without stopping them.
    fn submit_window(&mut self, again: bool, effects: &mut Vec<Effect>) {
        if again {
            self.sent_upto = 0;
        }
        let Some(relay) = self.relay() else {
            return;
        };
        let in_flight = self.unacked.range(..=self.sent_upto).count();
        let room = SUBMIT_WINDOW.saturating_sub(in_flight);
        for (height, block) in self.unacked.range(self.sent_upto + 1..).take(room) {
            effects.push(Effect::Send {
                to: relay,
                message: Message::Submit {
                    block: block.clone(),
                },
            });
            self.sent_upto = *height;
        }
    }

    /// A new election of the own consortium: the unacknowledged blocks go to its relay at
    /// once (D4).
    pub(super) fn resubmit(&mut self, now: u64, effects: &mut Vec<Effect>) {
        self.quiet_rounds = 0;
        self.submit_window(true, effects);
        self.next_resend = now + self.resend_ms();
    }

    /// How long a block waits for its acknowledgement before it is resent: long enough
    /// for a replicated acknowledgement, short next to a failover.
    pub(super) fn resend_ms(&self) -> u64 {
        self.timing.retry_ms()
    }

    /// An acknowledgement from the relay: cumulative, up to `height`.
    pub(super) fn on_ack(
        &mut self,
        from: Address,
        epoch: u64,
        height: u64,
        hash: Hash,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if self.relay() != Some(from) {
            return;
        }
        let acked: Vec<u64> = self.unacked.range(..=height).map(|(h, _)| *h).collect();
        if !(self.unacked.get(&height).is_some_and(|b| b.hash() == hash) || acked.len() > 1) {
            return;
        }
        for h in acked {
            if let Some(block) = self.unacked.remove(&h) {
                effects.push(Effect::Emit(Event::Acked {
                    member: self.me,
                    consortium: self.consortium,
                    height: h,
                    relay: from,
                    epoch,
                    records: block.records.len() as u32,
                    first_seq: block.records.first().map_or(0, |r| r.content.seq),
                    last_seq: block.records.last().map_or(0, |r| r.content.seq),
                    external: block.is_external(),
                    at: now,
                }));
            }
        }
        self.quiet_rounds = 0;
        self.submit_window(false, effects);
    }

    /// The own lanes' timers: closing open blocks, and resending unacknowledged ones.
    pub(super) fn lanes_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let wait = self.timing.member_max_wait_ms;
        if self.open_since.is_some_and(|t| now >= t + wait) {
            self.close_lane(now, effects);
        }
        if self.private_since.is_some_and(|t| now >= t + wait) {
            self.close_private(now, effects);
        }
        if self.unacked.is_empty() || now < self.next_resend {
            return;
        }
        self.quiet_rounds = self.quiet_rounds.saturating_add(1);
        if self.quiet_rounds >= 2 {
            // A whole round went unanswered: probe with the lowest block only (its
            // acknowledgement frees the window), leave the window as it is, and ask the
            // supervisor who serves now.
            if let (Some(relay), Some(block)) = (self.relay(), self.unacked.values().next()) {
                effects.push(Effect::Send {
                    to: relay,
                    message: Message::Submit {
                        block: block.clone(),
                    },
                });
            }
            effects.push(self.discover());
        } else {
            self.submit_window(true, effects);
        }
        let backoff = 1 << (self.quiet_rounds - 1).min(RESEND_BACKOFF);
        self.next_resend = now + backoff * self.resend_ms();
    }
}
