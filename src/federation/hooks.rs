//! Fault injection on a running federation: crashes, restarts, partitions, raw envelopes
//! and members' keys. Public only with the `testing` cargo feature (the crate's own
//! tests, examples and benches turn it on); `ieschain bench` uses [`FederationHandle::crash_node`]
//! inside the crate for its failover figure.

use ieschain_actors::messages::Crash;

use super::{FederationError, FederationHandle};

impl FederationHandle {
    /// Crashes member `name`'s node: it stops at once and its memory is gone; its store
    /// keeps what it had persisted. Receipts of its records not yet acknowledged end with
    /// [`FederationError::Interrupted`].
    #[cfg(feature = "testing")]
    pub async fn crash(&self, name: &str) -> Result<(), FederationError> {
        self.crash_node(name).await
    }

    pub(crate) async fn crash_node(&self, name: &str) -> Result<(), FederationError> {
        let addr = self.addr(name)?;
        let address = self.address_of(name)?;
        self.inner.parts.transport.unregister(&address);
        let _ = addr.send(Crash).await;
        if let Ok(mut nodes) = self.inner.nodes.lock() {
            if let Some(node) = nodes.get_mut(&address) {
                node.addr = None;
            }
        }
        if let Ok(mut stats) = self.inner.stats.lock() {
            stats.tracker.interrupt(address);
        }
        Ok(())
    }

    /// Restarts member `name`'s crashed node: a new incarnation that recovers from its
    /// own store.
    #[cfg(feature = "testing")]
    pub async fn restart(&self, name: &str) -> Result<(), FederationError> {
        let address = self.address_of(name)?;
        let (consortium, incarnation) = {
            let mut nodes = self
                .inner
                .nodes
                .lock()
                .map_err(|_| FederationError::Stopped)?;
            let node = nodes
                .get_mut(&address)
                .ok_or_else(|| FederationError::UnknownMember(name.to_string()))?;
            if node.addr.is_some() {
                return Err(FederationError::AlreadyRunning(name.to_string()));
            }
            node.incarnation += 1;
            (node.consortium, node.incarnation)
        };
        let key = self
            .inner
            .parts
            .keys
            .by_address(&address)
            .cloned()
            .ok_or_else(|| FederationError::UnknownMember(name.to_string()))?;
        let parts = &self.inner.parts;
        let addr = parts
            .placement
            .start(address, parts.node(key, consortium, incarnation))
            .ok_or(FederationError::Stopped)?;
        if let Ok(mut nodes) = self.inner.nodes.lock() {
            if let Some(node) = nodes.get_mut(&address) {
                node.addr = Some(addr);
            }
        }
        Ok(())
    }

    /// Cuts member `name` off from every other node until [`FederationHandle::heal`].
    #[cfg(feature = "testing")]
    pub fn isolate(&self, name: &str) -> Result<(), FederationError> {
        let address = self.address_of(name)?;
        self.inner.network.isolate(address);
        Ok(())
    }

    /// Ends every partition.
    #[cfg(feature = "testing")]
    pub fn heal(&self) {
        self.inner.network.heal();
    }

    /// Sends a raw envelope through the transport, as a node (or an attacker) would: for
    /// fault-injection and hostile-input tests.
    #[cfg(feature = "testing")]
    pub fn inject(&self, envelope: ieschain_core::message::Envelope) {
        self.inner.parts.transport.send(envelope);
    }

    /// The key of member `name`, for tests that must sign as it (built-in federations
    /// derive every key from the seed, SPEC §12 D2).
    #[cfg(feature = "testing")]
    pub fn key_of(&self, name: &str) -> Result<ieschain_core::Keypair, FederationError> {
        self.inner
            .parts
            .keys
            .member(name)
            .cloned()
            .ok_or_else(|| FederationError::UnknownMember(name.to_string()))
    }
}
