//! Is a certificate another node's? (PROTOCOL-OPS.md §5.2.) A peer is a node only if its
//! certificate chains to the trusted roots (checked by the TLS verifiers) and:
//!
//! - its common name matches the reserved node common name
//!   (`CertificateReservedNodeCommonName`; empty means this node's own certificate's CN),
//!   where a leading `*.` matches exactly one DNS label, as EventStoreDB allows;
//! - it has at least one IP or DNS subject alternative name;
//! - if it has an extended key usage extension, that lists both serverAuth and clientAuth.

use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// What a certificate says about itself, as far as the node check needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFacts {
    pub common_name: Option<String>,
    pub has_ip_or_dns_san: bool,
    /// `None` without an extended key usage extension.
    pub server_and_client_auth: Option<bool>,
}

/// Reads the facts of a DER certificate; `None` if it does not parse.
pub fn facts(certificate: &CertificateDer<'_>) -> Option<CertificateFacts> {
    let (_, parsed) = X509Certificate::from_der(certificate.as_ref()).ok()?;
    let common_name = parsed
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let has_ip_or_dns_san = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .is_some_and(|san| {
            san.value
                .general_names
                .iter()
                .any(|n| matches!(n, GeneralName::DNSName(_) | GeneralName::IPAddress(_)))
        });
    let server_and_client_auth = parsed
        .extended_key_usage()
        .ok()
        .flatten()
        .map(|eku| eku.value.server_auth && eku.value.client_auth);
    Some(CertificateFacts {
        common_name,
        has_ip_or_dns_san,
        server_and_client_auth,
    })
}

/// Whether `common_name` matches `pattern` (`*.example.org` matches `a.example.org`, not
/// `example.org` nor `a.b.example.org`); case-insensitive, as DNS names are.
pub fn common_name_matches(pattern: &str, common_name: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    let common_name = common_name.to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(suffix) => common_name
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
        None => pattern == common_name,
    }
}

/// Whether the end-entity `certificate` is a node's, for the reserved common name.
pub fn is_node_certificate(certificate: &CertificateDer<'_>, reserved_common_name: &str) -> bool {
    let Some(facts) = facts(certificate) else {
        return false;
    };
    facts
        .common_name
        .as_deref()
        .is_some_and(|cn| common_name_matches(reserved_common_name, cn))
        && facts.has_ip_or_dns_san
        && facts.server_and_client_auth != Some(false)
}

#[cfg(test)]
mod tests {
    use super::common_name_matches;

    #[test]
    fn wildcards_match_one_label_only() {
        // A wildcard reserved name admits every node of the domain and nothing else.
        assert!(common_name_matches(
            "*.nodes.example.org",
            "a.nodes.example.org"
        ));
        assert!(common_name_matches(
            "*.nodes.example.org",
            "B.Nodes.example.org"
        ));
        assert!(!common_name_matches(
            "*.nodes.example.org",
            "nodes.example.org"
        ));
        assert!(!common_name_matches(
            "*.nodes.example.org",
            "a.b.nodes.example.org"
        ));
        assert!(!common_name_matches(
            "*.nodes.example.org",
            ".nodes.example.org"
        ));
        assert!(common_name_matches(
            "eventstoredb-node",
            "EventStoreDB-node"
        ));
        assert!(!common_name_matches(
            "eventstoredb-node",
            "eventstoredb-node2"
        ));
    }
}
