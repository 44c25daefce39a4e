//! A node's TLS identity: a certificate self-signed with the node's own ed25519 key, and
//! the one question asked of a peer's certificate: which ed25519 key does it carry?
//!
//! No certificate authority is involved. A peer is who its key says, and its key is
//! accepted only if the configuration lists it (`tls.rs`). The certificate is only
//! the envelope TLS needs for that key; the handshake signature, checked by rustls with
//! the provider's algorithms, proves the peer holds the secret half.

use std::fmt;

use ieschain_core::{Address, Keypair, PublicKey};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use x509_parser::oid_registry::OID_SIG_ED25519;

use crate::NetError;

/// The DER prefix of a PKCS#8 v1 `PrivateKeyInfo` for an ed25519 key (RFC 8410 §7): the
/// version 0, the algorithm id-Ed25519 (1.3.101.112), and an OCTET STRING holding the
/// 32-byte seed as an OCTET STRING. The seed follows.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The subject name in every node certificate. Nothing checks it: peers are known by key.
const SUBJECT: &str = "ieschain";

/// This node's key and certificate, as TLS wants them.
pub(crate) struct Identity {
    public: PublicKey,
    certificate: CertificateDer<'static>,
    pkcs8: Vec<u8>,
}

impl Identity {
    /// The identity of the node whose ieschain secret is `secret`: its key pair, and a
    /// certificate self-signed with it.
    pub(crate) fn new(secret: [u8; 32]) -> Result<Identity, NetError> {
        let public = Keypair::from_seed(secret).public();
        let mut pkcs8 = Vec::with_capacity(PKCS8_ED25519_PREFIX.len() + secret.len());
        pkcs8.extend_from_slice(&PKCS8_ED25519_PREFIX);
        pkcs8.extend_from_slice(&secret);
        let certificate = Self::certificate(&pkcs8).map_err(|e| NetError::Certificate {
            address: public.address(),
            reason: e.to_string(),
        })?;
        // The certificate must carry the node's own key: a mismatch would be a bug in the
        // PKCS#8 prefix above, and would make every peer refuse this node.
        if certificate_key(&certificate) != Some(public) {
            return Err(NetError::Certificate {
                address: public.address(),
                reason: "the certificate does not carry the node's key".into(),
            });
        }
        Ok(Identity {
            public,
            certificate,
            pkcs8,
        })
    }

    fn certificate(pkcs8: &[u8]) -> Result<CertificateDer<'static>, rcgen::Error> {
        let key = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(pkcs8),
            &rcgen::PKCS_ED25519,
        )?;
        let params = rcgen::CertificateParams::new(vec![SUBJECT.to_string()])?;
        Ok(params.self_signed(&key)?.der().clone())
    }

    /// This node's address.
    pub(crate) fn address(&self) -> Address {
        self.public.address()
    }

    /// The certificate chain to present: the self-signed certificate alone.
    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.certificate.clone()]
    }

    /// The private key, for rustls.
    pub(crate) fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.pkcs8.clone()))
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        write!(f, "Identity({})", self.address().short())
    }
}

/// The ed25519 key a certificate carries, or `None` if it does not parse, is followed by
/// trailing bytes, or carries another kind of key.
pub(crate) fn certificate_key(certificate: &CertificateDer<'_>) -> Option<PublicKey> {
    let (rest, parsed) = x509_parser::parse_x509_certificate(certificate.as_ref()).ok()?;
    if !rest.is_empty() {
        return None;
    }
    let spki = parsed.public_key();
    if spki.algorithm.algorithm != OID_SIG_ED25519 || spki.subject_public_key.unused_bits != 0 {
        return None;
    }
    let key: [u8; 32] = spki.subject_public_key.data.as_ref().try_into().ok()?;
    Some(PublicKey(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The certificate carries the node's ieschain key, and its Debug form hides the secret.
    #[test]
    fn certificate_carries_the_node_key() {
        let secret = [7u8; 32];
        let identity = Identity::new(secret).unwrap();
        assert_eq!(identity.public, Keypair::from_seed(secret).public());
        assert_eq!(certificate_key(&identity.chain()[0]), Some(identity.public));
        assert!(!format!("{identity:?}").contains("0707"));
    }

    /// Garbage is no certificate, and yields no key.
    #[test]
    fn garbage_has_no_key() {
        assert_eq!(
            certificate_key(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])),
            None
        );
        assert_eq!(certificate_key(&CertificateDer::from(Vec::new())), None);
    }
}
