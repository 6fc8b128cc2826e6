//! Verifying a peer node's certificate when this node dials it (internal port, gossip): the
//! chain must reach the trusted roots and the end entity must be a node certificate
//! ([`super::identity`]). The host name is not checked: nodes are dialed by the addresses
//! gossip and configuration give, and EventStoreDB forgives a name mismatch for a certificate
//! that is a node's; what makes a peer trustworthy is the CA and the reserved common name.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

use super::identity::is_node_certificate;

/// Accepts a server certificate that chains to the roots and is a node's.
#[derive(Debug)]
pub struct PeerNodeVerifier {
    roots: Arc<RootCertStore>,
    node_common_name: String,
    provider: Arc<CryptoProvider>,
}

impl PeerNodeVerifier {
    pub fn new(
        roots: Arc<RootCertStore>,
        node_common_name: String,
        provider: Arc<CryptoProvider>,
    ) -> PeerNodeVerifier {
        PeerNodeVerifier {
            roots,
            node_common_name,
            provider,
        }
    }
}

impl ServerCertVerifier for PeerNodeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        if !is_node_certificate(end_entity, &self.node_common_name) {
            return Err(Error::General(format!(
                "the peer's certificate is not a node certificate (common name {:?} expected, with an IP or DNS name)",
                self.node_common_name
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
