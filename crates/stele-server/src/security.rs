//! A node's security from its options (issue 13): TLS material, access control,
//! authentication, and the default users. `--insecure` turns all of it off; otherwise the
//! node serves TLS on every port and checks every request.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use stele_api::auth::{AuthFailure, Authenticate, Authentication};
use stele_cluster::tls::{Tls, TlsSource};
use stele_cluster::{Node, VNodeState};
use stele_core::access::{AnonymousAccess, Principal};
use stele_services::access::AccessControl;
use stele_services::users::{AuthError, Authenticator};

use crate::config::Options;

/// How often a node checks whether it leads, until it has made sure the default users exist.
const DEFAULT_USERS_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// The node's TLS from the options: `None` for `--insecure`; a generated self-signed
/// `localhost` certificate for `--dev`; otherwise the certificate files.
pub fn load_tls(options: &Options) -> anyhow::Result<Option<Arc<Tls>>> {
    if options.insecure {
        return Ok(None);
    }
    let source = if options.dev {
        let generated =
            crate::certs::dev_certificate().context("generating the dev certificate")?;
        let key = PrivateKeyDer::from_pem_slice(generated.key_pem().as_bytes())
            .context("reading the generated dev key")?;
        tracing::warn!(
            "development mode: a self-signed certificate for localhost was generated for this run; \
             clients must trust it (fetch it from the node, for example with \
             `openssl s_client -connect localhost:PORT -showcerts`)"
        );
        TlsSource::InMemory {
            chain: vec![generated.cert_der().clone()],
            key: Arc::new(key),
        }
    } else {
        let (Some(certificate_file), Some(private_key_file)) = (
            options.certificate_file.clone(),
            options.certificate_private_key_file.clone(),
        ) else {
            anyhow::bail!("CertificateFile and CertificatePrivateKeyFile must be set");
        };
        TlsSource::Files {
            certificate_file,
            private_key_file,
            trusted_roots_path: options.trusted_root_certificates_path.clone(),
        }
    };
    let reserved = options
        .certificate_reserved_node_common_name
        .clone()
        .unwrap_or_default();
    let tls = Tls::load(source, &reserved).context("loading the node's certificate")?;
    tracing::info!(
        node_common_name = %tls.current().node_common_name,
        "serving TLS on every port; other nodes must present certificates with this common name"
    );
    Ok(Some(tls))
}

/// What callers may do: everything when insecure, EventStoreDB's policy and ACLs otherwise.
pub fn access_control(options: &Options, node: &Node) -> AccessControl {
    if options.insecure {
        return AccessControl::insecure(node.clone());
    }
    AccessControl::secure(
        node.clone(),
        AnonymousAccess {
            allow_anonymous_endpoint_access: options.allow_anonymous_endpoint_access,
            allow_anonymous_stream_access: options.allow_anonymous_stream_access,
            override_anonymous_endpoint_access_for_gossip: options
                .override_anonymous_endpoint_access_for_gossip,
        },
    )
}

/// Who callers are: the system when insecure, the users in the log otherwise.
pub fn authentication(options: &Options, node: &Node) -> Authentication {
    if options.insecure {
        return Authentication::insecure();
    }
    Authentication::secure(Arc::new(Users(Authenticator::new(node.clone()))))
}

/// The users kept in the log, as the client port's authentication asks for them.
struct Users(Authenticator);

impl Authenticate for Users {
    fn authenticate<'a>(
        &'a self,
        login: &'a str,
        password: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Principal, AuthFailure>> {
        Box::pin(async move {
            self.0
                .authenticate(login, password)
                .await
                .map_err(|error| match error {
                    AuthError::Invalid => AuthFailure::Invalid,
                    AuthError::NotReady => AuthFailure::NotReady,
                })
        })
    }
}

/// Each time this node becomes leader (in every term it leads), makes sure `admin` and
/// `ops` exist, as EventStoreDB does at every election, with `DefaultAdminPassword` /
/// `DefaultOpsPassword`: an admin user deleted by mistake comes back at the next election.
/// Users that exist are left alone, whatever their passwords. The task runs for the
/// process's life and logs only its first failure in a term.
pub fn spawn_default_users(options: &Options, node: &Node) {
    let node = node.clone();
    let admin = options.default_admin_password.clone();
    let ops = options.default_ops_password.clone();
    tokio::spawn(async move {
        // The last term in which the users were ensured, and failures in the current one.
        let mut ensured_in: Option<u64> = None;
        let mut failures = 0u32;
        loop {
            tokio::time::sleep(DEFAULT_USERS_CHECK_INTERVAL).await;
            let status = node.status();
            if status.state != VNodeState::Leader || ensured_in == Some(status.epoch_number) {
                continue;
            }
            match stele_services::users::ensure_default_users(&node, &admin, &ops).await {
                Ok(()) => {
                    tracing::debug!(term = status.epoch_number, "the default users exist");
                    ensured_in = Some(status.epoch_number);
                    failures = 0;
                }
                Err(error) => {
                    failures += 1;
                    // Said once, then quietly retried: a leader that cannot write yet.
                    if failures == 1 {
                        tracing::info!(%error, "cannot create the default users yet; retrying");
                    }
                }
            }
        }
    });
}
