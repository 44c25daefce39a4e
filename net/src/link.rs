//! The outgoing side: one [`Link`] task per peer, which dials it when there is something to
//! send, keeps the connection, writes each class's queue on that class's stream, and dials
//! again with exponential backoff when the connection breaks.
//!
//! A frame leaves its queue for the link's hand (`pending`) and is cleared from there only
//! once written; a frame whose write fails because the connection broke is written again on
//! the next connection, so that a reconnection loses nothing that was still in the node.
//! What QUIC had buffered on the broken connection but the peer never read is lost, and
//! cannot be known.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ieschain_core::Address;
use quinn::{ConnectError, Connection, ConnectionError, Endpoint, SendStream};
use thiserror::Error;
use tokio::sync::mpsc;

use crate::frame;
use crate::stats::{add, bump, Counters};
use crate::tls::SERVER_NAME;
use ieschain_core::message::Traffic;

/// The first wait before dialing again.
pub(crate) const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest wait between dials.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// The close code of a connection whose sender has nothing more to send.
pub(crate) const CLOSE_DONE: u32 = 0;

/// A class's quinn stream priority: control is sent first.
fn priority(class: Traffic) -> i32 {
    match class {
        Traffic::Control => 1,
        Traffic::Bulk => 0,
    }
}

/// One encoded envelope with its length prefix.
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) prefix: [u8; frame::PREFIX],
    pub(crate) body: Vec<u8>,
}

impl Frame {
    fn len(&self) -> u64 {
        (self.prefix.len() + self.body.len()) as u64
    }
}

/// The sending halves of a peer's two queues, held by [`crate::Network`].
#[derive(Debug)]
pub(crate) struct Outbox {
    control: mpsc::Sender<Frame>,
    bulk: mpsc::Sender<Frame>,
}

impl Outbox {
    /// Queues `frame` without waiting; a full or closed queue gives it back.
    pub(crate) fn try_send(&self, frame: Frame, class: Traffic) -> Result<(), Frame> {
        let queue = match class {
            Traffic::Control => &self.control,
            Traffic::Bulk => &self.bulk,
        };
        queue.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(f) | mpsc::error::TrySendError::Closed(f) => f,
        })
    }
}

/// Why a connection ended.
#[derive(Debug, Error)]
enum LinkError {
    #[error("dial: {0}")]
    Dial(#[from] ConnectError),
    #[error("connection: {0}")]
    Connection(#[from] ConnectionError),
    #[error("write: {0}")]
    Write(#[from] quinn::WriteError),
    #[error("stream closed: {0}")]
    Closed(#[from] quinn::ClosedStream),
    #[error("stream stopped: {0}")]
    Stopped(#[from] quinn::StoppedError),
}

/// One class's queue on the link's side, and the frame in hand.
#[derive(Debug)]
struct Lane {
    class: Traffic,
    queue: mpsc::Receiver<Frame>,
    pending: Option<Frame>,
    /// False once the queue is closed and empty (the network is shutting down).
    open: bool,
}

impl Lane {
    fn new(class: Traffic, queue: mpsc::Receiver<Frame>) -> Self {
        Lane {
            class,
            queue,
            pending: None,
            open: true,
        }
    }

    /// Takes the next frame into hand unless one is there; false once none will come.
    async fn fill(&mut self) -> bool {
        if self.pending.is_some() {
            return true;
        }
        if !self.open {
            return false;
        }
        match self.queue.recv().await {
            Some(frame) => {
                self.pending = Some(frame);
                true
            }
            None => {
                self.open = false;
                false
            }
        }
    }

    /// Writes this lane's frames on its own stream of `connection` until the queue closes,
    /// then finishes the stream and waits until the peer has read it all.
    async fn drain(
        &mut self,
        connection: &Connection,
        counters: &Counters,
    ) -> Result<(), LinkError> {
        let mut stream: Option<SendStream> = None;
        while self.fill().await {
            let Some(frame) = self.pending.as_ref() else {
                continue;
            };
            let stream = match stream.as_mut() {
                Some(stream) => stream,
                None => {
                    let opened = connection.open_uni().await?;
                    opened.set_priority(priority(self.class))?;
                    stream.insert(opened)
                }
            };
            frame::write(stream, frame.prefix, &frame.body).await?;
            bump(&counters.sent);
            add(&counters.bytes_out, frame.len());
            self.pending = None;
        }
        if let Some(mut stream) = stream {
            stream.finish()?;
            stream.stopped().await?;
        }
        Ok(())
    }
}

/// The task that carries one peer's queues.
#[derive(Debug)]
pub(crate) struct Link {
    peer: Address,
    addr: SocketAddr,
    endpoint: Endpoint,
    client: quinn::ClientConfig,
    control: Lane,
    bulk: Lane,
    counters: Arc<Counters>,
}

impl Link {
    /// A link to `peer` at `addr` and the outbox that feeds it, with queues of `capacity`.
    pub(crate) fn new(
        peer: Address,
        addr: SocketAddr,
        endpoint: Endpoint,
        client: quinn::ClientConfig,
        capacity: usize,
        counters: Arc<Counters>,
    ) -> (Link, Outbox) {
        let (control_tx, control_rx) = mpsc::channel(capacity);
        let (bulk_tx, bulk_rx) = mpsc::channel(capacity);
        let link = Link {
            peer,
            addr,
            endpoint,
            client,
            control: Lane::new(Traffic::Control, control_rx),
            bulk: Lane::new(Traffic::Bulk, bulk_rx),
            counters,
        };
        let outbox = Outbox {
            control: control_tx,
            bulk: bulk_tx,
        };
        (link, outbox)
    }

    /// Runs until both queues are closed and written out, or the endpoint stops.
    pub(crate) async fn run(mut self) {
        let mut backoff = BACKOFF_MIN;
        let mut connected_before = false;
        while self.wait_for_work().await {
            let connection = match self.dial().await {
                Ok(connection) => connection,
                Err(LinkError::Dial(ConnectError::EndpointStopping)) => return,
                Err(e) => {
                    log::debug!(
                        "net: {} at {}: {e}; again in {backoff:?}",
                        self.peer,
                        self.addr
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            let since = tokio::time::Instant::now();
            bump(&self.counters.connects);
            if connected_before {
                bump(&self.counters.reconnects);
            }
            connected_before = true;
            log::debug!("net: connected to {} at {}", self.peer, self.addr);
            match self.serve(&connection).await {
                Ok(()) => {
                    connection.close(CLOSE_DONE.into(), b"done");
                    return;
                }
                Err(e) => {
                    log::info!(
                        "net: connection to {} at {} ended: {e}",
                        self.peer,
                        self.addr
                    );
                    connection.close(CLOSE_DONE.into(), b"reconnecting");
                    // A connection that breaks at once (a peer refusing this node's key
                    // after the handshake, or closing on every frame) must not turn into
                    // a tight dial loop: the backoff resets only after one that lasted.
                    if since.elapsed() < BACKOFF_MAX {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                    } else {
                        backoff = BACKOFF_MIN;
                    }
                }
            }
        }
    }

    /// Waits until a frame is in hand; false once both queues are closed and empty.
    async fn wait_for_work(&mut self) -> bool {
        loop {
            if self.control.pending.is_some() || self.bulk.pending.is_some() {
                return true;
            }
            if !self.control.open && !self.bulk.open {
                return false;
            }
            tokio::select! {
                _ = self.control.fill(), if self.control.open => {}
                _ = self.bulk.fill(), if self.bulk.open => {}
            }
        }
    }

    async fn dial(&self) -> Result<Connection, LinkError> {
        let connecting = self
            .endpoint
            .connect_with(self.client.clone(), self.addr, SERVER_NAME)?;
        Ok(connecting.await?)
    }

    /// Writes both queues on `connection` until they are closed and read (`Ok`), or the
    /// connection breaks.
    async fn serve(&mut self, connection: &Connection) -> Result<(), LinkError> {
        let counters = &*self.counters;
        let both = async {
            tokio::try_join!(
                self.control.drain(connection, counters),
                self.bulk.drain(connection, counters)
            )
        };
        tokio::select! {
            result = both => result.map(|_| ()),
            error = connection.closed() => Err(error.into()),
        }
    }
}
