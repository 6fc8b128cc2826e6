//! TLS for every port (issue 13): the node's certificate, the trusted roots, and the rustls
//! configurations built from them — the client port (gRPC and HTTP, ALPN `h2` and
//! `http/1.1`, an optional client certificate that makes the caller a node), the internal
//! port (mutual TLS: both sides must present node certificates) and the node's own dialing
//! of peers (internal port and gossip).
//!
//! [`Tls`] holds the current configurations behind a lock; [`Tls::reload`] reads the files
//! again and swaps them (EventStoreDB's `POST /admin/reloadconfig`), so new connections see
//! the new certificate and open ones keep theirs.
//!
//! The cryptography is rustls with the *ring* provider, chosen explicitly (the test builds
//! also link aws-lc-rs through the official client, and rustls refuses to guess).

mod identity;
mod load;
mod net;
mod verify;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

pub use identity::{common_name_matches, facts, is_node_certificate, CertificateFacts};
pub use load::{TlsError, MAX_CERTIFICATE_FILE_BYTES, MAX_TRUSTED_ROOT_FILES};
pub use net::{TlsNet, MAX_PENDING_TLS_HANDSHAKES, TLS_HANDSHAKE_TIMEOUT};
pub use verify::PeerNodeVerifier;

/// Where the node's certificate, key and trusted roots come from.
#[derive(Debug, Clone)]
pub enum TlsSource {
    /// `CertificateFile`, `CertificatePrivateKeyFile`, `TrustedRootCertificatesPath`;
    /// reloadable.
    Files {
        certificate_file: PathBuf,
        private_key_file: PathBuf,
        trusted_roots_path: PathBuf,
    },
    /// Generated at start (`--dev`): the certificate is its own trusted root.
    InMemory {
        chain: Vec<CertificateDer<'static>>,
        key: Arc<PrivateKeyDer<'static>>,
    },
}

/// The configurations in force.
#[derive(Debug)]
pub struct TlsConfigs {
    /// The client port: ALPN `h2` and `http/1.1`; a client certificate is optional and, when
    /// given, must chain to the trusted roots.
    pub client_port: Arc<ServerConfig>,
    /// The internal port: a client certificate is required (checked as a node's after the
    /// handshake, see [`TlsNet`]).
    pub internal_server: Arc<ServerConfig>,
    /// Dialing peers: this node's certificate as client identity, peers verified as nodes.
    pub peer_client: Arc<ClientConfig>,
    /// The common name peers must have (`CertificateReservedNodeCommonName`, or this node's
    /// own certificate's).
    pub node_common_name: String,
    /// The trusted roots.
    pub roots: Arc<RootCertStore>,
    /// This node's certificate chain (leaf first).
    pub chain: Vec<CertificateDer<'static>>,
}

/// The node's TLS: current configurations, reloadable.
#[derive(Debug)]
pub struct Tls {
    source: TlsSource,
    reserved_node_common_name: String,
    current: RwLock<Arc<TlsConfigs>>,
}

/// The crypto provider every configuration uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Tls {
    /// Loads the material and builds the configurations. `reserved_node_common_name` empty
    /// means "this node's own certificate's common name", as in EventStoreDB 23 and later.
    pub fn load(source: TlsSource, reserved_node_common_name: &str) -> Result<Arc<Tls>, TlsError> {
        let configs = build(&source, reserved_node_common_name)?;
        Ok(Arc::new(Tls {
            source,
            reserved_node_common_name: reserved_node_common_name.to_owned(),
            current: RwLock::new(Arc::new(configs)),
        }))
    }

    /// Reads the files again and swaps the configurations; on error the old ones stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        let configs = build(&self.source, &self.reserved_node_common_name)?;
        *self.current.write().expect("tls lock") = Arc::new(configs);
        Ok(())
    }

    /// The configurations in force now.
    pub fn current(&self) -> Arc<TlsConfigs> {
        self.current.read().expect("tls lock").clone()
    }

    /// Whether a peer's end-entity certificate (already verified against the roots by the
    /// handshake) is a node's.
    pub fn is_node(&self, end_entity: &CertificateDer<'_>) -> bool {
        is_node_certificate(end_entity, &self.current().node_common_name)
    }
}

fn build(source: &TlsSource, reserved: &str) -> Result<TlsConfigs, TlsError> {
    let (chain, key, roots) = match source {
        TlsSource::Files {
            certificate_file,
            private_key_file,
            trusted_roots_path,
        } => (
            load::certificates("CertificateFile", certificate_file)?,
            load::private_key("CertificatePrivateKeyFile", private_key_file)?,
            load::trusted_roots("TrustedRootCertificatesPath", trusted_roots_path)?,
        ),
        TlsSource::InMemory { chain, key } => {
            let mut roots = RootCertStore::empty();
            for certificate in chain {
                roots
                    .add(certificate.clone())
                    .map_err(|e| TlsError::Config(format!("the dev certificate: {e}")))?;
            }
            (chain.clone(), key.clone_key(), roots)
        }
    };
    let leaf = chain
        .first()
        .ok_or_else(|| TlsError::Config("CertificateFile holds no certificate".into()))?;
    let own = facts(leaf).ok_or_else(|| {
        TlsError::Config("CertificateFile: the certificate does not parse as X.509".into())
    })?;
    let node_common_name = if reserved.is_empty() {
        own.common_name.clone().ok_or_else(|| {
            TlsError::Config(
                "the node certificate has no common name, so CertificateReservedNodeCommonName must be set"
                    .into(),
            )
        })?
    } else {
        reserved.to_owned()
    };
    let roots = Arc::new(roots);
    let provider = provider();
    let config_error =
        |what: &str, e: &dyn std::fmt::Display| TlsError::Config(format!("{what}: {e}"));

    let optional_clients =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .allow_unauthenticated()
            .build()
            .map_err(|e| config_error("the trusted roots", &e))?;
    let mut client_port = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("TLS versions", &e))?
        .with_client_cert_verifier(optional_clients)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| config_error("CertificateFile and CertificatePrivateKeyFile", &e))?;
    client_port.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];

    let required_clients =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| config_error("the trusted roots", &e))?;
    let internal_server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("TLS versions", &e))?
        .with_client_cert_verifier(required_clients)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| config_error("CertificateFile and CertificatePrivateKeyFile", &e))?;

    let verifier = Arc::new(PeerNodeVerifier::new(
        roots.clone(),
        node_common_name.clone(),
        provider.clone(),
    ));
    let peer_client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| config_error("TLS versions", &e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain.clone(), key)
        .map_err(|e| config_error("CertificateFile and CertificatePrivateKeyFile", &e))?;

    Ok(TlsConfigs {
        client_port: Arc::new(client_port),
        internal_server: Arc::new(internal_server),
        peer_client: Arc::new(peer_client),
        node_common_name,
        roots,
        chain,
    })
}
