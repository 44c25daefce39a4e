//! Mutual TLS 1.3 between nodes, and the QUIC configurations built on it.
//!
//! Both ends present their self-signed node certificate (`identity.rs`) and both
//! check the other's with a `PeerVerifier`: the certificate's ed25519 key must be one the
//! configuration lists (for the dialer: the key of the node it dialed), and the TLS 1.3
//! handshake signature must verify under that key with the ring provider's algorithms
//! ([`rustls::crypto::verify_tls13_signature`]). Anything else is refused at the handshake
//! and counted in `refused_handshakes`.
//!
//! Session resumption and its tickets are off: a resumed session would skip the
//! certificate check, and a handshake per connection costs one signature each way.

use std::collections::BTreeSet;
use std::sync::Arc;

use ieschain_core::PublicKey;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{IdleTimeout, TransportConfig, VarInt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

use crate::config::NetConfig;
use crate::identity::{certificate_key, Identity};
use crate::stats::{bump, Counters};
use crate::NetError;

/// The ALPN protocol of ieschain's envelope framing, version 1.
pub const ALPN: &[u8] = b"ieschain/1";

/// The TLS server name a dialer sends. Nothing checks it: the dialer checks the key.
pub(crate) const SERVER_NAME: &str = "ieschain";

/// The DER of an ed25519 SubjectPublicKeyInfo (RFC 8410) up to the key's 32 bytes:
/// SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING (no unused bits) }.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// How many unidirectional streams a peer may hold open on one connection: one per
/// traffic class, and slack for a stream being replaced.
const INCOMING_STREAMS: u32 = 4;

/// Accepts a peer's certificate only if it carries one of `accepted` keys and signs the
/// handshake with it.
#[derive(Debug)]
pub(crate) struct PeerVerifier {
    accepted: BTreeSet<PublicKey>,
    algorithms: WebPkiSupportedAlgorithms,
    counters: Arc<Counters>,
}

impl PeerVerifier {
    pub(crate) fn new(
        accepted: BTreeSet<PublicKey>,
        provider: &CryptoProvider,
        counters: Arc<Counters>,
    ) -> Self {
        PeerVerifier {
            accepted,
            algorithms: provider.signature_verification_algorithms,
            counters,
        }
    }

    /// The peer's key, if its certificate is acceptable; otherwise the refusal, counted.
    fn check(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
    ) -> Result<PublicKey, rustls::Error> {
        let refused = |error: CertificateError| {
            bump(&self.counters.refused_handshakes);
            Err(rustls::Error::InvalidCertificate(error))
        };
        if !intermediates.is_empty() {
            log::debug!("net: refused a peer presenting a certificate chain");
            return refused(CertificateError::BadEncoding);
        }
        let Some(key) = certificate_key(end_entity) else {
            log::debug!("net: refused a peer whose certificate carries no ed25519 key");
            return refused(CertificateError::BadEncoding);
        };
        if !self.accepted.contains(&key) {
            log::info!("net: refused unknown key of {}", key.address());
            return refused(CertificateError::ApplicationVerificationFailure);
        }
        Ok(key)
    }

    fn verify_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // The signature is checked against the very key the certificate check accepted
        // (read once, by `certificate_key`), as a raw key: no second parse of the
        // certificate decides what the signature is checked against.
        let Some(key) = certificate_key(certificate).filter(|k| self.accepted.contains(k)) else {
            bump(&self.counters.refused_handshakes);
            return Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ));
        };
        let mut spki = ED25519_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(&key.0);
        rustls::crypto::verify_tls13_signature_with_raw_key(
            message,
            &SubjectPublicKeyInfoDer::from(spki.as_slice()),
            dss,
            &self.algorithms,
        )
        .inspect_err(|e| {
            log::info!("net: refused a handshake signature: {e}");
            bump(&self.counters.refused_handshakes);
        })
    }
}

impl ServerCertVerifier for PeerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _certificate: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // Only TLS 1.3 is configured; QUIC has no TLS 1.2.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(message, certificate, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

impl ClientCertVerifier for PeerVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _certificate: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls13RequiredForQuic,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verify_signature(message, certificate, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}

/// The ring provider, shared by both ends.
// rustls 0.23.48 deprecates the ring provider because its key exchange is not
// post-quantum; the post-quantum one needs aws-lc-rs, a C and CMake build this workspace
// keeps out. Key exchange is X25519 (then P-256, P-384).
#[allow(deprecated)]
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Keep-alive, idle timeout and stream limits. A dialer's connection carries only what it
/// sends, so the accepting end may open no stream on it; an accepted connection takes a
/// few unidirectional streams and no bidirectional one.
fn transport(config: &NetConfig, accepts_streams: bool) -> Result<TransportConfig, NetError> {
    if config.keep_alive >= config.idle_timeout {
        return Err(NetError::Config(format!(
            "keep-alive {:?} must be shorter than the idle timeout {:?}",
            config.keep_alive, config.idle_timeout
        )));
    }
    let idle = IdleTimeout::try_from(config.idle_timeout)
        .map_err(|_| NetError::Config(format!("idle timeout {:?}", config.idle_timeout)))?;
    let mut transport = TransportConfig::default();
    transport
        .keep_alive_interval(Some(config.keep_alive))
        .max_idle_timeout(Some(idle))
        .max_concurrent_bidi_streams(VarInt::from_u32(0))
        .max_concurrent_uni_streams(VarInt::from_u32(if accepts_streams {
            INCOMING_STREAMS
        } else {
            0
        }));
    Ok(transport)
}

/// The server side: presents `identity` and accepts a client holding one of `accepted`.
pub(crate) fn server_config(
    identity: &Identity,
    accepted: BTreeSet<PublicKey>,
    config: &NetConfig,
    counters: Arc<Counters>,
) -> Result<quinn::ServerConfig, NetError> {
    let provider = provider();
    let verifier = PeerVerifier::new(accepted, &provider, counters);
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(NetError::Tls)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(identity.chain(), identity.private_key())
        .map_err(NetError::Tls)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    tls.send_tls13_tickets = 0;
    let quic = QuicServerConfig::try_from(tls).map_err(|e| NetError::Quic(e.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(quic));
    server.transport_config(Arc::new(transport(config, true)?));
    Ok(server)
}

/// The client side, for dialing the node whose key is `peer`: presents `identity` and
/// accepts only `peer`'s key.
pub(crate) fn client_config(
    identity: &Identity,
    peer: PublicKey,
    config: &NetConfig,
    counters: Arc<Counters>,
) -> Result<quinn::ClientConfig, NetError> {
    let provider = provider();
    let verifier = PeerVerifier::new(BTreeSet::from([peer]), &provider, counters);
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(NetError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(identity.chain(), identity.private_key())
        .map_err(NetError::Tls)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.resumption = rustls::client::Resumption::disabled();
    let quic = QuicClientConfig::try_from(tls).map_err(|e| NetError::Quic(e.to_string()))?;
    let mut client = quinn::ClientConfig::new(Arc::new(quic));
    client.transport_config(Arc::new(transport(config, false)?));
    Ok(client)
}
