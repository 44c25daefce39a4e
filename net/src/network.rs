//! The [`Network`] handle: starts the runtime, the endpoint, the accept loop and one link
//! per peer; routes sends to the links' queues; shuts everything down.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use ieschain_core::codec;
use ieschain_core::message::{Envelope, Traffic};
use ieschain_core::{Address, PublicKey};
use quinn::{Endpoint, EndpointConfig, TokioRuntime, VarInt};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use crate::config::NetConfig;
use crate::identity::Identity;
use crate::inbound::{self, Inbound};
use crate::link::{Frame, Link, Outbox, CLOSE_DONE};
use crate::stats::{bump, Counters, NetStats};
use crate::{frame, tls, Deliver, NetError};

/// How long [`Network::shutdown`] waits for the queues to be written and read.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// How long [`Network::shutdown`] then waits for the endpoint's connections to close.
pub const CLOSE_GRACE: Duration = Duration::from_millis(500);

/// A node's QUIC transport. Sends never block; received envelopes go to the `deliver`
/// callback of [`Network::start`], on the network's own threads.
pub struct Network {
    address: Address,
    local: SocketAddr,
    max_frame: usize,
    endpoint: Endpoint,
    /// The peers' queues; emptied by [`Network::shutdown`], which closes them.
    outboxes: RwLock<BTreeMap<Address, Outbox>>,
    links: Mutex<Vec<JoinHandle<()>>>,
    counters: Arc<Counters>,
    /// `None` once shut down.
    runtime: Mutex<Option<Runtime>>,
}

impl Network {
    /// Starts the network of the node `config.secret` names: a tokio runtime of its own
    /// (two worker threads named `ieschain-net`, so it works inside or outside another
    /// runtime), a QUIC endpoint on `config.listen`, and a link for each peer, which dials
    /// on the first send. `deliver` is called for every envelope accepted from a peer.
    pub fn start(config: NetConfig, deliver: Deliver) -> Result<Network, NetError> {
        if config.max_frame == 0 || u32::try_from(config.max_frame).is_err() {
            return Err(NetError::Config(format!(
                "max_frame {} must be between 1 and {}",
                config.max_frame,
                u32::MAX
            )));
        }
        if config.queue == 0 {
            return Err(NetError::Config("queue must be at least 1".into()));
        }
        let identity = Identity::new(config.secret)?;
        let address = identity.address();
        let mut peers = BTreeMap::new();
        for (peer_address, peer) in &config.peers {
            if peer.public_key.address() != *peer_address {
                return Err(NetError::Config(format!(
                    "peer {peer_address}: its key's address is {}",
                    peer.public_key.address()
                )));
            }
            if *peer_address != address {
                peers.insert(*peer_address, *peer);
            }
        }
        let counters = Arc::new(Counters::default());
        let accepted: BTreeSet<PublicKey> = peers.values().map(|p| p.public_key).collect();
        let server = tls::server_config(&identity, accepted, &config, counters.clone())?;
        let clients = peers
            .iter()
            .map(|(peer_address, peer)| {
                let client =
                    tls::client_config(&identity, peer.public_key, &config, counters.clone())?;
                Ok((*peer_address, (peer.addr, client)))
            })
            .collect::<Result<BTreeMap<_, _>, NetError>>()?;
        let socket = UdpSocket::bind(config.listen).map_err(|source| NetError::Bind {
            addr: config.listen,
            source,
        })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ieschain-net")
            .enable_all()
            .build()
            .map_err(NetError::Runtime)?;
        let bound = {
            // quinn spawns its driver on the current runtime: ours, whatever the caller's is.
            let _entered = runtime.enter();
            Endpoint::new(
                EndpointConfig::default(),
                Some(server),
                socket,
                Arc::new(TokioRuntime),
            )
            .and_then(|endpoint| Ok((endpoint.local_addr()?, endpoint)))
        };
        let (local, endpoint) = match bound {
            Ok(bound) => bound,
            Err(source) => {
                // Dropping a runtime on an async thread panics; this does not.
                runtime.shutdown_background();
                return Err(NetError::Bind {
                    addr: config.listen,
                    source,
                });
            }
        };
        let mut outboxes = BTreeMap::new();
        let mut links = Vec::new();
        for (peer_address, (addr, client)) in clients {
            let (link, outbox) = Link::new(
                peer_address,
                addr,
                endpoint.clone(),
                client,
                config.queue,
                counters.clone(),
            );
            links.push(runtime.spawn(link.run()));
            outboxes.insert(peer_address, outbox);
        }
        let inbound = Arc::new(Inbound {
            max_frame: config.max_frame,
            deliver,
            counters: counters.clone(),
            connections: Default::default(),
        });
        runtime.spawn(inbound::accept(endpoint.clone(), inbound));
        log::info!(
            "net: {address} listening on {local} with {} peers",
            peers.len()
        );
        Ok(Network {
            address,
            local,
            max_frame: config.max_frame,
            endpoint,
            outboxes: RwLock::new(outboxes),
            links: Mutex::new(links),
            counters,
            runtime: Mutex::new(Some(runtime)),
        })
    }

    /// This node's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// Where the endpoint listens (the port picked, if the configuration said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Queues `envelope` for `envelope.header.to`, in the queue of its message's traffic
    /// class ([`Traffic::of_encoded`]: control ahead of bulk). Never blocks: an unknown
    /// recipient, a full queue, an envelope longer than the frame bound or a send after
    /// shutdown drops it and counts it in `dropped`.
    pub fn send(&self, envelope: Envelope) {
        let to = envelope.header.to;
        let class = Traffic::of_encoded(&envelope.payload);
        let body = codec::encode(&envelope);
        let prefix = match frame::prefix(&body) {
            Some(prefix) if body.len() <= self.max_frame => prefix,
            _ => {
                log::warn!(
                    "net: envelope to {to} of {} bytes exceeds the frame bound; dropped",
                    body.len()
                );
                bump(&self.counters.dropped);
                return;
            }
        };
        let queued = match self.outboxes.read() {
            Ok(outboxes) => match outboxes.get(&to) {
                Some(outbox) => outbox.try_send(Frame { prefix, body }, class).is_ok(),
                None => {
                    log::debug!("net: no link to {to}; envelope dropped");
                    false
                }
            },
            Err(_) => false,
        };
        if !queued {
            bump(&self.counters.dropped);
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> NetStats {
        self.counters.snapshot()
    }

    /// Closes every queue, waits up to [`DRAIN_GRACE`] for the links to write and the
    /// peers to read what was queued, closes the endpoint, waits up to [`CLOSE_GRACE`] for
    /// its connections to close, and stops the runtime. Blocks the caller for at most
    /// about the sum of both. Later sends are dropped; a second call does nothing.
    pub fn shutdown(&self) {
        let Some(runtime) = self.runtime.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        if let Ok(mut outboxes) = self.outboxes.write() {
            outboxes.clear();
        }
        let links = self
            .links
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        let endpoint = self.endpoint.clone();
        let (done, finished) = std::sync::mpsc::channel();
        runtime.spawn(async move {
            let deadline = tokio::time::Instant::now() + DRAIN_GRACE;
            for link in links {
                if tokio::time::timeout_at(deadline, link).await.is_err() {
                    log::info!("net: shutdown: a link still had frames to send");
                    break;
                }
            }
            endpoint.close(VarInt::from_u32(CLOSE_DONE), b"shutdown");
            let _ = tokio::time::timeout(CLOSE_GRACE, endpoint.wait_idle()).await;
            let _ = done.send(());
        });
        // A std channel, not `block_on`: the caller may be on another runtime's thread.
        let _ = finished.recv_timeout(DRAIN_GRACE + CLOSE_GRACE + Duration::from_millis(500));
        self.endpoint
            .close(VarInt::from_u32(CLOSE_DONE), b"shutdown");
        // Waits until the runtime's tasks are gone (the endpoint's driver holds the UDP
        // socket: a restarted node binds the same port at once), on a thread of its own:
        // stopping a runtime from an async thread panics, waiting on a thread does not.
        let stopper = std::thread::Builder::new()
            .name("ieschain-net-stop".into())
            .spawn(move || runtime.shutdown_timeout(CLOSE_GRACE));
        if let Ok(stopper) = stopper {
            let _ = stopper.join();
        }
        log::info!("net: {} shut down", self.address);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Without a shutdown, stop at once; dropping a runtime on an async thread panics.
        if let Some(runtime) = self.runtime.get_mut().ok().and_then(Option::take) {
            self.endpoint
                .close(VarInt::from_u32(CLOSE_DONE), b"dropped");
            runtime.shutdown_background();
        }
    }
}

impl fmt::Debug for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Network")
            .field("address", &self.address)
            .field("local", &self.local)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}
