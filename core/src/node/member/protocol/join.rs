//! The join of a newcomer (SPEC §6.1): the relay's part (the credential check and the
//! registration), the members' part (the announcement and the receipts) and the
//! newcomer's part.

use super::JoinPhase;
use crate::node::member::{Duty, Member};

use crate::crypto::{Address, Signature};
use crate::message::{credential_digest, Message};
use crate::node::{Effect, Event, Protocol, StepTarget};
use crate::record::{Audience, Record, RecordBody};
use crate::registry::RegistryEntry;

impl Member {
    // ----- join: the relay's part -----

    pub(in crate::node::member) fn on_join_request(
        &mut self,
        from: Address,
        entry: RegistryEntry,
        credential: Signature,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if entry.address != from {
            effects.push(self.rejected(
                "bad_join",
                true,
                format!("join request for {} sent by {from}", entry.address),
            ));
            return;
        }
        if !self.is_relay() {
            if let Some(relay) = self.relay() {
                effects.push(Effect::Send {
                    to: from,
                    message: Message::JoinRelay { relay },
                });
            }
            return;
        }
        // A relay not in an active configuration (still taking over, or sealed by a newer
        // one) cannot put the registry change on the lane: a join it accepted now would be
        // done before anyone could check the newcomer's blocks. No answer; the newcomer
        // asks again.
        if !self.producing(now) {
            return;
        }
        let refuse = |reason: String| Effect::Send {
            to: from,
            message: Message::JoinRefused { reason },
        };
        // The same request again gets the same answer (D9).
        if let Some(announcement) = self.proto.announced.get(&from).cloned() {
            let same = matches!(&announcement.content.body,
                RecordBody::JoinAnnouncement { entry: e } if *e == entry);
            if same {
                self.proto.accepting.insert(from, announcement);
                self.accept_registered_joins(now, effects);
                return;
            }
        }
        let Some(admission) = self
            .genesis
            .consortiums
            .get(self.consortium.0 as usize)
            .map(|c| c.admission_key)
        else {
            return;
        };
        if admission
            .verify(&credential_digest(&entry), &credential)
            .is_err()
        {
            effects.push(self.rejected(
                "bad_credential",
                true,
                format!("join request of {}", entry.name),
            ));
            effects.push(refuse(format!(
                "bad credential: not signed by the admission key of {}",
                self.genesis.consortium_name(self.consortium)
            )));
            return;
        }
        if entry.relay_capable {
            effects.push(refuse(
                "newcomers join as members; relay_capable is fixed at genesis".into(),
            ));
            return;
        }
        // A newcomer registered already with exactly this entry (a join retried after a
        // restart) is announced again; any other use of a registered key is refused.
        let registered = self
            .holder
            .as_ref()
            .and_then(|h| h.relay_lanes.get(&self.consortium))
            .map(|lane| {
                (
                    lane.registry.get(&entry.address).cloned(),
                    lane.registry.check(&entry),
                )
            });
        let Some((registered, check)) = registered else {
            return;
        };
        let again = registered.as_ref() == Some(&entry);
        if !again {
            let pending = self
                .proto
                .pending_joins
                .iter()
                .any(|e| e.public_key == entry.public_key || e.address == entry.address);
            // A key learned only from an announcement (of the previous relay, which
            // failed over before its registry change reached this one) is this very
            // newcomer retrying, not a duplicate.
            let known = self.key_of(&entry.address).is_some_and(|key| {
                self.proto.learned.get(&entry.address) != Some(&key) || key != entry.public_key
            });
            if registered.is_some() || pending || known {
                effects.push(self.rejected(
                    "duplicate_key",
                    true,
                    format!("join request of {}", entry.name),
                ));
                effects.push(refuse(format!(
                    "duplicate key: {} is already registered",
                    entry.address
                )));
                return;
            }
            if let Err(err) = check {
                effects.push(refuse(format!("invalid entry: {err}")));
                return;
            }
            if self.directory_has_name(&entry.name) {
                effects.push(refuse(format!("duplicate name: {}", entry.name)));
                return;
            }
        }
        // Step 3: register in the next relay block, announce, answer.
        if !again {
            self.proto.pending_joins.push(entry.clone());
        }
        let announcement = self.write_record(
            Audience::Own,
            RecordBody::JoinAnnouncement {
                entry: entry.clone(),
            },
            now,
            effects,
        );
        self.proto.learned.insert(entry.address, entry.public_key);
        self.proto.announced.insert(from, announcement.clone());
        let run = entry.leaf();
        for member in self.consortium_members() {
            if member != self.me && member != from {
                effects.push(Effect::Send {
                    to: member,
                    message: Message::Forward {
                        lane: self.consortium,
                        height: 0,
                        records: vec![announcement.clone()],
                    },
                });
            }
        }
        effects.push(Effect::Send {
            to: self.supervisor,
            message: Message::Joined {
                announcement: announcement.clone(),
            },
        });
        // The newcomer hears that it is accepted once its entry is on the relay lane (the
        // relay block that carries it is stored, confirmed by the backup): a relay that
        // fails before then takes the registration with it, and the newcomer, not yet
        // done, asks the next relay.
        self.proto.accepting.insert(from, announcement);
        effects.push(self.step(
            Protocol::Join,
            run,
            3,
            StepTarget::Consortium(self.consortium),
            format!(
                "credential checked; registry updated; signed key of {} broadcast",
                entry.name
            ),
            now,
        ));
        // The registry change goes out in a relay block at once.
        self.flush_relay(now, effects);
        self.accept_registered_joins(now, effects);
    }

    /// Answers `JoinAccepted` to each newcomer waiting for it whose registry entry is now on
    /// the released part of this relay's lane (SPEC §14: a relay block is released once
    /// durable at relay and backup in an active configuration; one that is never released
    /// is truncated, registration and all).
    pub(in crate::node::member) fn accept_registered_joins(
        &mut self,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Duty::Relay(duty) = &self.duty else {
            return;
        };
        if !duty.is_active() {
            return;
        }
        let released = duty.released_height();
        let Some(lane) = self
            .holder
            .as_ref()
            .and_then(|h| h.relay_lanes.get(&self.consortium))
        else {
            return;
        };
        let ready: Vec<(Address, Record)> = self
            .proto
            .accepting
            .iter()
            .filter(|(newcomer, _)| {
                lane.registry.get(newcomer).is_some()
                    && duty
                        .registered_at
                        .get(newcomer)
                        .is_none_or(|height| *height <= released)
            })
            .map(|(newcomer, announcement)| (*newcomer, announcement.clone()))
            .collect();
        for (newcomer, announcement) in ready {
            self.proto.accepting.remove(&newcomer);
            let members = self.alive_members(newcomer, now);
            effects.push(Effect::Send {
                to: newcomer,
                message: Message::JoinAccepted {
                    announcement,
                    members,
                },
            });
        }
    }

    pub(in crate::node::member) fn directory_has_name(&self, name: &str) -> bool {
        self.genesis
            .consortiums
            .iter()
            .flat_map(|c| c.members.iter())
            .any(|m| m.name == name)
    }

    /// The registered members of this consortium: the genesis list and the joined.
    pub(in crate::node::member) fn consortium_members(&self) -> Vec<Address> {
        match self
            .holder
            .as_ref()
            .and_then(|h| h.relay_lanes.get(&self.consortium))
        {
            Some(lane) => lane.registry.entries().map(|e| e.address).collect(),
            None => self
                .genesis
                .consortiums
                .get(self.consortium.0 as usize)
                .map(|c| c.members.iter().map(|m| m.address).collect())
                .unwrap_or_default(),
        }
    }

    /// The members this relay heard from within the failure detector's window, itself
    /// included (D11): whose receipts a join needs.
    pub(in crate::node::member) fn alive_members(
        &self,
        newcomer: Address,
        now: u64,
    ) -> Vec<Address> {
        let window = self.timing.suspect_ms();
        let mut alive: Vec<Address> = self
            .consortium_members()
            .into_iter()
            .filter(|m| {
                *m == self.me
                    || self
                        .proto
                        .heard
                        .get(m)
                        .is_some_and(|t| now.saturating_sub(*t) < window)
            })
            .filter(|m| *m != newcomer)
            .collect();
        alive.sort();
        alive
    }

    /// Sends a relay block now, even an empty one, so that a registry change goes out.
    pub(in crate::node::member) fn flush_relay(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let Duty::Relay(duty) = &mut self.duty else {
            return;
        };
        if !duty.is_active() {
            return;
        }
        // An empty block goes out as a drain: only a drain may be empty (an urgent flush
        // holds an urgent block, SPEC §4.4).
        let flush = duty.window.drain().unwrap_or(crate::window::Flush {
            blocks: Vec::new(),
            reason: crate::window::FlushReason::Drain,
        });
        self.produce(flush, now, effects);
    }

    // ----- join: the members' part -----

    /// Checks a relay's announcement: a `JoinAnnouncement` by a relay-capable member of
    /// this consortium, with its signature. Returns the announced entry.
    pub(in crate::node::member) fn check_announcement(
        &self,
        announcement: &Record,
        effects: &mut Vec<Effect>,
    ) -> Option<RegistryEntry> {
        let RecordBody::JoinAnnouncement { entry } = &announcement.content.body else {
            effects.push(self.rejected("bad_join", true, "not an announcement".into()));
            return None;
        };
        let author = announcement.content.author;
        let capable = self
            .genesis
            .consortiums
            .get(self.consortium.0 as usize)
            .is_some_and(|c| {
                c.members
                    .iter()
                    .any(|m| m.address == author && m.relay_capable)
            });
        let key = self.directory.get(&author).map(|k| k.key);
        match key {
            Some(key) if capable && announcement.verify(&key).is_ok() => Some(entry.clone()),
            _ => {
                effects.push(self.rejected(
                    "forged_announcement",
                    true,
                    format!(
                        "announcement of {} not signed by a relay of this consortium",
                        entry.name
                    ),
                ));
                None
            }
        }
    }

    pub(in crate::node::member) fn learn_announced(
        &mut self,
        _relay: Address,
        announcement: &Record,
        entry: &RegistryEntry,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if self.check_announcement(announcement, effects).is_none() {
            return;
        }
        if self
            .proto
            .learned
            .insert(entry.address, entry.public_key)
            .is_none()
        {
            effects.push(self.step(
                Protocol::Join,
                entry.leaf(),
                4,
                StepTarget::Node(self.me),
                format!("checks the relay's signature, learns {}'s key", entry.name),
                now,
            ));
        }
    }

    pub(in crate::node::member) fn on_join_apply(
        &mut self,
        from: Address,
        announcement: Record,
        application: Record,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if let Some(receipt) = self.proto.receipts_given.get(&from).cloned() {
            effects.push(Effect::Send {
                to: from,
                message: Message::JoinReceipted { receipt },
            });
            return;
        }
        let Some(entry) = self.check_announcement(&announcement, effects) else {
            return;
        };
        let RecordBody::JoinApplication { entry: applied } = &application.content.body else {
            effects.push(self.rejected("bad_join", true, "not an application".into()));
            return;
        };
        if *applied != entry
            || entry.address != from
            || application.content.author != from
            || application.verify(&entry.public_key).is_err()
        {
            effects.push(self.rejected(
                "bad_signature",
                true,
                format!("join application of {}", entry.name),
            ));
            return;
        }
        self.proto.learned.insert(entry.address, entry.public_key);
        let receipt = self.write_record(
            Audience::Members(vec![from]),
            RecordBody::JoinReceipt {
                newcomer: from,
                application: application.digest(),
            },
            now,
            effects,
        );
        self.proto.receipts_given.insert(from, receipt.clone());
        effects.push(Effect::Send {
            to: from,
            message: Message::JoinReceipted { receipt },
        });
        effects.push(self.step(
            Protocol::Join,
            entry.leaf(),
            6,
            StepTarget::Node(from),
            "signed receipt".into(),
            now,
        ));
    }

    // ----- join: the newcomer's part -----

    pub(in crate::node::member) fn on_join_accepted(
        &mut self,
        from: Address,
        announcement: Record,
        members: Vec<Address>,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Some(joining) = self.proto.joining.as_ref() else {
            return;
        };
        if joining.phase != JoinPhase::Request(from) {
            return;
        }
        let entry = joining.entry.clone();
        match self.check_announcement(&announcement, effects) {
            Some(announced) if announced == entry && announcement.content.author == from => {}
            _ => {
                self.join_failed(
                    format!("the relay's announcement from {from} does not verify"),
                    now,
                    effects,
                );
                return;
            }
        }
        // Accepted again, by a new relay after a failover: the application and the
        // receipts already collected stand (members resend the receipts they gave), and
        // the new relay's list of live members replaces the old relay's. The same relay
        // answering again keeps its first list, so a member that went down since is
        // still waited for (SPEC §6.1 step 7).
        if let Some(joining) = self.proto.joining.as_mut() {
            if joining.application.is_some() {
                if joining.accepted_by != Some(from) {
                    joining.needed = members.into_iter().filter(|m| *m != self.me).collect();
                    joining.announcement = Some(announcement);
                    joining.accepted_by = Some(from);
                }
                joining.phase = JoinPhase::Collect;
                joining.next_send = now;
                self.join_tick(now, effects);
                self.join_done_if_receipted(now, effects);
                return;
            }
        }
        // Step 5: the application, on the newcomer's own lane and to every listed member.
        let application = self.write_record(
            Audience::Own,
            RecordBody::JoinApplication {
                entry: entry.clone(),
            },
            now,
            effects,
        );
        if let Some(joining) = self.proto.joining.as_mut() {
            joining.phase = JoinPhase::Collect;
            joining.announcement = Some(announcement);
            joining.application = Some(application);
            joining.needed = members.into_iter().filter(|m| *m != self.me).collect();
            joining.accepted_by = Some(from);
            joining.next_send = now;
        }
        effects.push(self.step(
            Protocol::Join,
            entry.leaf(),
            5,
            StepTarget::Consortium(self.consortium),
            "signed application".into(),
            now,
        ));
        self.join_tick(now, effects);
    }

    pub(in crate::node::member) fn on_join_receipt(
        &mut self,
        from: Address,
        receipt: Record,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Some(joining) = self.proto.joining.as_ref() else {
            return;
        };
        if joining.phase != JoinPhase::Collect || !joining.needed.contains(&from) {
            return;
        }
        let application = joining.application.as_ref().map(|a| a.digest());
        let good = matches!(&receipt.content.body,
            RecordBody::JoinReceipt { newcomer, application: a }
                if *newcomer == self.me && Some(*a) == application)
            && receipt.content.author == from
            && self
                .key_of(&from)
                .is_some_and(|k| receipt.verify(&k).is_ok());
        if !good {
            effects.push(self.rejected("bad_signature", true, format!("join receipt from {from}")));
            return;
        }
        if let Some(joining) = self.proto.joining.as_mut() {
            joining.receipts.insert(from);
        }
        self.join_done_if_receipted(now, effects);
    }

    /// Join step 7: done once every listed member's receipt is in.
    /// A joined newcomer's proof of registration: its relay's signed announcement. It asks
    /// the supervisor who serves with it, in case the supervisor never heard of it.
    pub(in crate::node::member) fn join_proof(&self) -> Option<Record> {
        let joining = self.proto.joining.as_ref()?;
        (joining.phase == JoinPhase::Over)
            .then(|| joining.announcement.clone())
            .flatten()
    }

    pub(in crate::node::member) fn join_done_if_receipted(
        &mut self,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        let Some(joining) = self.proto.joining.as_mut() else {
            return;
        };
        if joining.phase == JoinPhase::Collect && joining.receipts.is_superset(&joining.needed) {
            joining.phase = JoinPhase::Over;
            let receipts = joining.receipts.len() as u32;
            let run = joining.entry.leaf();
            effects.push(self.step(
                Protocol::Join,
                run,
                7,
                StepTarget::Consortium(self.consortium),
                format!("joined with {receipts} receipts"),
                now,
            ));
            effects.push(Effect::Emit(Event::JoinDone {
                newcomer: self.me,
                consortium: self.consortium,
                receipts,
                at: now,
            }));
            // Now a member: learn who serves, and write the lane.
            self.discovered = false;
        }
    }

    pub(in crate::node::member) fn join_failed(
        &mut self,
        reason: String,
        now: u64,
        effects: &mut Vec<Effect>,
    ) {
        if let Some(joining) = self.proto.joining.as_mut() {
            if joining.phase == JoinPhase::Over {
                return;
            }
            joining.phase = JoinPhase::Over;
        }
        effects.push(Effect::Emit(Event::JoinFailed {
            newcomer: self.me,
            consortium: self.consortium,
            reason,
            at: now,
        }));
    }

    pub(in crate::node::member) fn join_tick(&mut self, now: u64, effects: &mut Vec<Effect>) {
        let resend = self.resend_ms();
        let Some(joining) = self.proto.joining.as_ref() else {
            return;
        };
        if joining.phase == JoinPhase::Over {
            return;
        }
        if now >= joining.deadline {
            let reason = match &joining.phase {
                JoinPhase::FindRelay => "no member answered with the relay".to_string(),
                JoinPhase::Request(relay) => {
                    format!("the relay {} did not answer", self.directory.name(relay))
                }
                _ => {
                    let missing: Vec<String> = joining
                        .needed
                        .difference(&joining.receipts)
                        .map(|m| self.directory.name(m))
                        .collect();
                    format!("no receipt by the deadline from {}", missing.join(", "))
                }
            };
            self.join_failed(reason, now, effects);
            return;
        }
        if now < joining.next_send {
            return;
        }
        let run = joining.entry.leaf();
        let key = joining.entry.public_key;
        let attempt = joining.attempt;
        let phase = joining.phase.clone();
        let members: Vec<Address> = self
            .genesis
            .consortiums
            .get(self.consortium.0 as usize)
            .map(|c| c.members.iter().map(|m| m.address).collect())
            .unwrap_or_default();
        match phase {
            JoinPhase::FindRelay => {
                if members.is_empty() {
                    return;
                }
                let to = members[(attempt as usize) % members.len()];
                effects.push(Effect::Send {
                    to,
                    message: Message::JoinIntent { key },
                });
                if attempt == 0 {
                    effects.push(self.step(
                        Protocol::Join,
                        run,
                        1,
                        StepTarget::Node(to),
                        "who is your relay?".into(),
                        now,
                    ));
                }
            }
            JoinPhase::Request(relay) => {
                let (entry, credential) = (joining.entry.clone(), joining.credential);
                // A relay that does not answer twice may be gone: ask a member again.
                let tries = self.proto.joining.as_ref().map_or(0, |j| j.attempt);
                if tries >= 2 && tries % 3 == 2 {
                    if let Some(j) = self.proto.joining.as_mut() {
                        j.phase = JoinPhase::FindRelay;
                    }
                } else {
                    effects.push(Effect::Send {
                        to: relay,
                        message: Message::JoinRequest {
                            entry: entry.clone(),
                            credential,
                        },
                    });
                    effects.push(self.step(
                        Protocol::Join,
                        run,
                        2,
                        StepTarget::Node(relay),
                        format!("join request with credential, as {}", entry.name),
                        now,
                    ));
                }
            }
            JoinPhase::Collect => {
                let (Some(announcement), Some(application)) =
                    (joining.announcement.clone(), joining.application.clone())
                else {
                    return;
                };
                for to in joining.needed.difference(&joining.receipts) {
                    effects.push(Effect::Send {
                        to: *to,
                        message: Message::JoinApply {
                            announcement: announcement.clone(),
                            application: application.clone(),
                        },
                    });
                }
                // Receipts still missing after a few resends: the relay may have failed
                // over, and the missing member with it. Ask a member who serves now.
                if attempt % 3 == 2 && !members.is_empty() {
                    effects.push(Effect::Send {
                        to: members[(attempt as usize / 3) % members.len()],
                        message: Message::JoinIntent { key },
                    });
                }
            }
            JoinPhase::Over => {}
        }
        if let Some(j) = self.proto.joining.as_mut() {
            j.attempt += 1;
            j.next_send = now + resend;
        }
    }
}
