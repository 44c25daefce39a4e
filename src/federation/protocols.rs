//! The protocols of SPEC §6 through the handle: start a run, await its outcome. And the
//! protocol workload: runs started at the configured rates.
//!
//! Each `await` ends with the run's outcome event, or with [`FederationError::Timeout`] at
//! the caller's deadline. The members enforce their own deadlines too (a join fails with the
//! names of the members that gave no receipt), so a deadline above the federation's
//! protocol deadline (10 s) lets the members' own, more precise error through.

use std::time::Duration;

use ieschain_actors::messages::Protocol;
use ieschain_core::message::credential_digest;
use ieschain_core::node::Event;
use ieschain_core::record::Role;
use ieschain_core::registry::RegistryEntry;
use ieschain_core::{Address, ConsortiumId, Domain, Hash, Keypair, Signature};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use tokio::sync::broadcast;

use super::{FederationError, FederationHandle, NodeEntry, WeakHandle};

/// A newcomer to admit (SPEC §6.1).
#[derive(Clone, Debug)]
pub struct JoinSpec {
    /// The consortium it joins, by name.
    pub consortium: String,
    /// Its name, unique in the federation.
    pub name: String,
    /// Enterprise or user.
    pub role: Role,
    /// Its key; by default derived from the seed and the name, as built-in members' are.
    pub key: Option<Keypair>,
    /// The admission credential; by default signed with the consortium's admission key,
    /// when the configuration lets it be derived (SPEC §12 D13).
    pub credential: Option<Signature>,
}

impl JoinSpec {
    /// A user called `name` joining `consortium`, with derived key and credential.
    pub fn new(consortium: &str, name: &str) -> Self {
        JoinSpec {
            consortium: consortium.to_string(),
            name: name.to_string(),
            role: Role::User,
            key: None,
            credential: None,
        }
    }
}

/// A completed join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinOutcome {
    /// The newcomer.
    pub newcomer: Address,
    /// Its consortium.
    pub consortium: ConsortiumId,
    /// The receipts it collected.
    pub receipts: u32,
}

/// A settled power trade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TradeOutcome {
    /// Trade id.
    pub trade: Hash,
    /// The offer.
    pub offer: Hash,
    /// Energy, Wh.
    pub wh: u64,
    /// Amount paid.
    pub amount: u64,
}

/// A delivered data trade.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataOutcome {
    /// Trade id.
    pub trade: Hash,
    /// The offer.
    pub offer: Hash,
    /// Bytes delivered.
    pub bytes: u64,
}

/// What an awaited event says about a run.
enum Verdict<T> {
    Pending,
    Done(T),
    Failed(String),
}

impl FederationHandle {
    async fn protocol(
        &self,
        name: &str,
        request: Protocol,
    ) -> Result<Option<Hash>, FederationError> {
        let addr = self.addr(name)?;
        addr.send(request)
            .await
            .map_err(|_| FederationError::Stopped)?
            .map_err(|e| FederationError::Refused {
                member: name.to_string(),
                reason: e.to_string(),
            })
    }

    /// Waits on `events` until `judge` decides, or `deadline` passes.
    async fn outcome<T>(
        &self,
        protocol: &'static str,
        mut events: broadcast::Receiver<Event>,
        deadline: Duration,
        what: String,
        mut judge: impl FnMut(&Event) -> Verdict<T>,
    ) -> Result<T, FederationError> {
        let (tx, mut timeout) = tokio::sync::oneshot::channel::<()>();
        self.inner.arbiter.spawn(async move {
            actix::clock::sleep(deadline).await;
            let _ = tx.send(());
        });
        loop {
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => match judge(&event) {
                        Verdict::Pending => {}
                        Verdict::Done(value) => return Ok(value),
                        Verdict::Failed(reason) => {
                            return Err(FederationError::Protocol { protocol, reason })
                        }
                    },
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(FederationError::Stopped)
                    }
                },
                _ = &mut timeout => return Err(FederationError::Timeout(what)),
            }
        }
    }

    /// Power purchase step 1: member `seller` (source) offers `wh` at `price_per_kwh` for
    /// delivery `slot`. Returns the offer's digest.
    pub async fn offer_power(
        &self,
        seller: &str,
        wh: u64,
        price_per_kwh: u64,
        slot: u64,
    ) -> Result<Hash, FederationError> {
        let request = Protocol::OfferPower {
            wh,
            price_per_kwh,
            slot,
        };
        self.protocol(seller, request)
            .await?
            .ok_or_else(|| FederationError::Refused {
                member: seller.to_string(),
                reason: "no offer made".into(),
            })
    }

    /// Power purchase steps 4–7: member `buyer` (load) bids `wh` on `offer` and awaits the
    /// settlement on the relay chain, or the refusal (offer exhausted, grid rejected).
    pub async fn buy_power(
        &self,
        buyer: &str,
        offer: Hash,
        wh: u64,
        deadline: Duration,
    ) -> Result<TradeOutcome, FederationError> {
        let buyer_address = self.address_of(buyer)?;
        let events = self.subscribe();
        self.protocol(buyer, Protocol::BidPower { offer, wh })
            .await?;
        let what = format!("power purchase of {buyer} on offer {}", offer.short());
        self.outcome(
            "power_purchase",
            events,
            deadline,
            what,
            move |event| match event {
                Event::TradeSettled {
                    trade,
                    offer: o,
                    buyer: b,
                    wh,
                    amount,
                    ..
                } if *o == offer && *b == buyer_address => Verdict::Done(TradeOutcome {
                    trade: *trade,
                    offer: *o,
                    wh: *wh,
                    amount: *amount,
                }),
                Event::TradeRefused {
                    offer: o,
                    buyer: b,
                    reason,
                    ..
                } if *o == offer && *b == buyer_address => Verdict::Failed(reason.clone()),
                _ => Verdict::Pending,
            },
        )
        .await
    }

    /// The whole direct power purchase (SPEC §6.2): `seller` offers, `buyer` bids for all
    /// of it, the grid approves, both sign, the settlement lands on the relay chain.
    pub async fn power_purchase(
        &self,
        seller: &str,
        buyer: &str,
        wh: u64,
        price_per_kwh: u64,
        slot: u64,
        deadline: Duration,
    ) -> Result<TradeOutcome, FederationError> {
        let offer = self.offer_power(seller, wh, price_per_kwh, slot).await?;
        self.buy_power(buyer, offer, wh, deadline).await
    }

    /// Data trade step 1: member `seller` (load) offers data for `price`: `data`, or by
    /// default its quarter's consumption data. Returns the offer's digest.
    pub async fn offer_data(
        &self,
        seller: &str,
        description: &str,
        price: u64,
        data: Option<Vec<u8>>,
    ) -> Result<Hash, FederationError> {
        let request = Protocol::OfferData {
            description: description.to_string(),
            price,
            data,
        };
        self.protocol(seller, request)
            .await?
            .ok_or_else(|| FederationError::Refused {
                member: seller.to_string(),
                reason: "no offer made".into(),
            })
    }

    /// Data trade steps 5–6: member `buyer` (service) buys `offer` and awaits the data. A
    /// delivery whose digest does not match the chain's is refused and disputed: an error.
    pub async fn buy_data(
        &self,
        buyer: &str,
        offer: Hash,
        deadline: Duration,
    ) -> Result<DataOutcome, FederationError> {
        let buyer_address = self.address_of(buyer)?;
        let events = self.subscribe();
        self.protocol(buyer, Protocol::BuyData { offer }).await?;
        let what = format!("data purchase of {buyer} on offer {}", offer.short());
        self.outcome(
            "data_trade",
            events,
            deadline,
            what,
            move |event| match event {
                Event::DataDelivered {
                    trade,
                    offer: o,
                    buyer: b,
                    bytes,
                    ..
                } if *o == offer && *b == buyer_address => Verdict::Done(DataOutcome {
                    trade: *trade,
                    offer: *o,
                    bytes: *bytes,
                }),
                Event::DataDisputed {
                    offer: o, buyer: b, ..
                } if *o == offer && *b == buyer_address => Verdict::Failed(format!(
                    "dispute: the data delivered for offer {} does not match its digest",
                    offer.short()
                )),
                _ => Verdict::Pending,
            },
        )
        .await
    }

    /// The whole data trade (SPEC §6.3) of `seller`'s consumption data to `buyer`.
    pub async fn data_trade(
        &self,
        seller: &str,
        buyer: &str,
        price: u64,
        deadline: Duration,
    ) -> Result<DataOutcome, FederationError> {
        let offer = self
            .offer_data(seller, "quarterly consumption data", price, None)
            .await?;
        self.buy_data(buyer, offer, deadline).await
    }

    /// Makes seller `seller` deliver `data` for `offer` instead of what it offered: a faulty
    /// seller, for tests of the dispute path.
    #[cfg(feature = "testing")]
    pub async fn tamper_data(
        &self,
        seller: &str,
        offer: Hash,
        data: Vec<u8>,
    ) -> Result<(), FederationError> {
        self.protocol(seller, Protocol::TamperData { offer, data })
            .await
            .map(|_| ())
    }

    /// The join (SPEC §6.1): starts the newcomer's node and awaits its outcome. The node
    /// stays in the federation, under `spec.name`, whether the join succeeds or not.
    pub async fn join(
        &self,
        spec: JoinSpec,
        deadline: Duration,
    ) -> Result<JoinOutcome, FederationError> {
        let parts = self.inner.parts.clone();
        let (key, consortium, entry, credential) = newcomer(&parts, &spec)?;
        let newcomer = key.address();
        let running = {
            let nodes = self
                .inner
                .nodes
                .lock()
                .map_err(|_| FederationError::Stopped)?;
            match nodes.get(&newcomer) {
                // Another node's key: the relay would refuse it; say so at once.
                Some(node) if node.name != spec.name => {
                    return Err(FederationError::Protocol {
                        protocol: "join",
                        reason: format!(
                            "duplicate key: {newcomer} is already registered, as {}",
                            node.name
                        ),
                    })
                }
                node => node.map(|n| n.addr.is_some()),
            }
        };
        match running {
            Some(true) => return Err(FederationError::AlreadyRunning(spec.name)),
            Some(false) => {}
            None => {
                let node = parts.newcomer(key.clone(), consortium).newcomer();
                let addr = parts
                    .placement
                    .start(newcomer, node)
                    .ok_or(FederationError::Stopped)?;
                if let Ok(mut names) = self.inner.newcomers.lock() {
                    names.insert(spec.name.clone(), newcomer);
                }
                if let Ok(mut nodes) = self.inner.nodes.lock() {
                    nodes.insert(
                        newcomer,
                        NodeEntry {
                            name: spec.name.clone(),
                            consortium,
                            public_key: key.public(),
                            addr: Some(addr),
                            incarnation: 0,
                        },
                    );
                }
            }
        }
        let events = self.subscribe();
        self.protocol(&spec.name, Protocol::Join { entry, credential })
            .await?;
        let what = format!("join of {} to {}", spec.name, spec.consortium);
        self.outcome("join", events, deadline, what, move |event| match event {
            Event::JoinDone {
                newcomer: n,
                consortium,
                receipts,
                ..
            } if *n == newcomer => Verdict::Done(JoinOutcome {
                newcomer,
                consortium: *consortium,
                receipts: *receipts,
            }),
            Event::JoinFailed {
                newcomer: n,
                reason,
                ..
            } if *n == newcomer => Verdict::Failed(reason.clone()),
            _ => Verdict::Pending,
        })
        .await
    }
}

/// A newcomer's key, consortium, registry entry and credential, from `spec`.
pub(crate) fn newcomer(
    parts: &super::Parts,
    spec: &JoinSpec,
) -> Result<(Keypair, ConsortiumId, RegistryEntry, Signature), FederationError> {
    let consortium = parts
        .genesis
        .consortiums
        .iter()
        .find(|c| c.name == spec.consortium)
        .map(|c| c.id)
        .ok_or_else(|| FederationError::UnknownConsortium(spec.consortium.clone()))?;
    let key = spec
        .key
        .clone()
        .unwrap_or_else(|| Keypair::derive(Domain::NodeKey, parts.seed, &spec.name));
    let entry = RegistryEntry {
        address: key.address(),
        public_key: key.public(),
        name: spec.name.clone(),
        role: spec.role,
        relay_capable: false,
    };
    let credential = match spec.credential {
        Some(credential) => credential,
        None => parts
            .keys
            .admission(consortium)
            .ok_or_else(|| FederationError::Protocol {
                protocol: "join",
                reason: format!(
                    "the admission key of {} is not derivable: pass a credential",
                    spec.consortium
                ),
            })?
            .sign(&credential_digest(&entry)),
    };
    Ok((key, consortium, entry, credential))
}

/// Protocol runs per minute for the whole federation, by protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct ProtocolRates {
    pub(crate) join: f64,
    pub(crate) power: f64,
    pub(crate) data: f64,
}

/// What the protocol workload starts: fire-and-forget runs, whose outcomes come as events.
pub(crate) trait Starter {
    /// A power purchase of `wh` at `price` for `slot`, `seller` to `buyer`.
    fn power(&self, seller: String, buyer: String, wh: u64, price: u64, slot: u64);
    /// A data trade of `seller`'s consumption data to `buyer` for `price`.
    fn data(&self, seller: String, buyer: String, price: u64);
    /// A join of a newcomer called `name` to `consortium`.
    fn join(&self, consortium: String, name: String);
}

impl Starter for WeakHandle {
    fn power(&self, seller: String, buyer: String, wh: u64, price: u64, slot: u64) {
        let Some(h) = self.upgrade() else { return };
        actix::spawn(async move {
            let deadline = Duration::from_secs(30);
            if let Err(e) = h
                .power_purchase(&seller, &buyer, wh, price, slot, deadline)
                .await
            {
                log::info!("power purchase {seller} → {buyer}: {e}");
            }
        });
    }

    fn data(&self, seller: String, buyer: String, price: u64) {
        let Some(h) = self.upgrade() else { return };
        actix::spawn(async move {
            let deadline = Duration::from_secs(30);
            if let Err(e) = h.data_trade(&seller, &buyer, price, deadline).await {
                log::info!("data trade {seller} → {buyer}: {e}");
            }
        });
    }

    fn join(&self, consortium: String, name: String) {
        let Some(h) = self.upgrade() else { return };
        actix::spawn(async move {
            let deadline = Duration::from_secs(30);
            if let Err(e) = h.join(JoinSpec::new(&consortium, &name), deadline).await {
                log::info!("join of {name}: {e}");
            }
        });
    }
}

/// The protocol workload: each protocol once early in the run (so that a short run shows
/// every one), then Poisson arrivals at its configured rate. Parties, quantities and prices
/// come from a ChaCha stream seeded from the run's seed; time from `clock`, so that a
/// simulation drives it in virtual time.
pub(crate) async fn drive(
    starter: impl Starter,
    parts: std::sync::Arc<super::Parts>,
    rates: ProtocolRates,
) {
    let seed = parts.seed;
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(b"protocol");
    let mut rng = ChaCha8Rng::from_seed(key);
    let genesis = parts.genesis.clone();
    let roles = parts.timing.protocols;
    let names_of = |id: Option<ConsortiumId>| -> Vec<String> {
        id.and_then(|id| genesis.consortiums.get(id.0 as usize))
            .map(|c| c.members.iter().map(|m| m.name.clone()).collect())
            .unwrap_or_default()
    };
    let (sources, loads, services) = (
        names_of(roles.source),
        names_of(roles.load),
        names_of(roles.service),
    );
    let consortiums: Vec<String> = genesis.consortiums.iter().map(|c| c.name.clone()).collect();
    let gap = |rng: &mut ChaCha8Rng, per_minute: f64| -> u64 {
        let uniform = ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64;
        (-uniform.ln() / per_minute * 60_000.0).max(1.0) as u64
    };
    let start = parts.clock.now_ms();
    // The first run of each, 1–2 s in, staggered.
    let mut next = [start + 1_000, start + 1_500, start + 2_000];
    let per_minute = [rates.power, rates.data, rates.join];
    let mut counter = 0u64;
    let pick = |rng: &mut ChaCha8Rng, list: &[String]| -> Option<String> {
        (!list.is_empty()).then(|| list[(rng.next_u32() as usize) % list.len()].clone())
    };
    loop {
        let Some((which, due)) = next
            .iter()
            .enumerate()
            .filter(|(i, _)| per_minute[*i] > 0.0)
            .min_by_key(|(_, due)| **due)
            .map(|(i, due)| (i, *due))
        else {
            return;
        };
        let now = parts.clock.now_ms();
        if due > now {
            actix::clock::sleep(Duration::from_millis(due - now)).await;
        }
        next[which] = due + gap(&mut rng, per_minute[which]);
        counter += 1;
        match which {
            0 => {
                if let (Some(seller), Some(buyer)) =
                    (pick(&mut rng, &sources), pick(&mut rng, &loads))
                {
                    let wh = 1_000 + (rng.next_u32() % 15_000) as u64;
                    let price = 100 + (rng.next_u32() % 100) as u64;
                    starter.power(seller, buyer, wh, price, counter);
                }
            }
            1 => {
                if let (Some(seller), Some(buyer)) =
                    (pick(&mut rng, &loads), pick(&mut rng, &services))
                {
                    let price = 10 + (rng.next_u32() % 90) as u64;
                    starter.data(seller, buyer, price);
                }
            }
            _ => {
                if let Some(consortium) = pick(&mut rng, &consortiums) {
                    let name = format!("newcomer-{consortium}-{seed}-{counter}");
                    starter.join(consortium, name);
                }
            }
        }
    }
}
