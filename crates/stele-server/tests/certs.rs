//! `stele certs` as an operator runs it: the real binary, es-gencert-cli's one-dash flags,
//! the files it writes (names, modes, `-force`, `./node1`, `./node2` numbering), and the chain
//! verified as rustls verifies a server (rustls-webpki) and, where the binary exists, with
//! `openssl verify`. The certificates' contents are checked with x509-parser.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

/// Runs `stele certs <args>` in `dir`.
fn certs(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stele"))
        .current_dir(dir)
        .arg("certs")
        .args(args)
        .output()
        .expect("run stele")
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn succeeds(dir: &Path, args: &[&str]) -> String {
    let output = certs(dir, args);
    assert!(
        output.status.success(),
        "stele certs {args:?}: {}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn cert_der(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).expect("a PEM certificate")
}

#[test]
fn create_ca_then_nodes_write_es_gencert_files_that_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    let said = succeeds(d, &["create-ca"]);
    assert_eq!(
        said.trim(),
        "A CA certificate & key file have been generated in the './ca' directory."
    );
    assert_eq!(mode(&d.join("ca/ca.crt")), 0o444);
    assert_eq!(mode(&d.join("ca/ca.key")), 0o400);

    // Without -force nothing is replaced, and the message says how to proceed.
    let before = std::fs::read(d.join("ca/ca.crt")).expect("read");
    let refused = certs(d, &["create-ca"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("existing files would be overwritten"),
        "{}",
        text(&refused)
    );
    assert_eq!(std::fs::read(d.join("ca/ca.crt")).expect("read"), before);
    succeeds(d, &["create-ca", "-force"]);
    assert_ne!(
        std::fs::read(d.join("ca/ca.crt")).expect("read"),
        before,
        "replaced"
    );
    assert_eq!(mode(&d.join("ca/ca.key")), 0o400);

    // No -out: the first free ./nodeN, files named after it (as es-gencert-cli does).
    let node_args = [
        "create-node",
        "-ip-addresses",
        "127.0.0.1",
        "-dns-names",
        "localhost",
    ];
    let said = succeeds(d, &node_args);
    assert!(said.contains("'node1' directory"), "{said}");
    let said = succeeds(d, &node_args);
    assert!(said.contains("'node2' directory"), "{said}");
    for file in ["node1/node1.crt", "node2/node2.crt"] {
        assert_eq!(mode(&d.join(file)), 0o444, "{file}");
    }
    assert_eq!(mode(&d.join("node1/node1.key")), 0o400);

    // With -out: <out>/node.crt; two dashes work as well as one.
    succeeds(
        d,
        &[
            "create-node",
            "--out",
            "./n",
            "--ip-addresses=127.0.0.1",
            "-dns-names=localhost",
        ],
    );
    let refused = certs(
        d,
        &["create-node", "-out", "./n", "-ip-addresses", "127.0.0.1"],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    succeeds(
        d,
        &[
            "create-node",
            "-out",
            "./n",
            "-ip-addresses",
            "127.0.0.1",
            "-dns-names",
            "localhost",
            "-force",
        ],
    );

    let ca = cert_der(&d.join("ca/ca.crt"));
    for node in ["node1/node1.crt", "n/node.crt"] {
        verify_server(&ca, &cert_der(&d.join(node)), node);
        openssl_verify(d, "ca/ca.crt", node);
    }
    check_node_contents(&cert_der(&d.join("node1/node1.crt")));
}

#[test]
fn create_node_needs_a_name_and_create_user_makes_a_client_certificate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    succeeds(d, &["create-ca", "-days", "30"]);
    let refused = certs(d, &["create-node"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("-ip-addresses or -dns-names"),
        "{}",
        text(&refused)
    );
    let said = succeeds(d, &["create-user", "-username", "ops"]);
    assert!(said.contains("'user-ops' directory"), "{said}");
    let der = cert_der(&d.join("user-ops/user-ops.crt"));
    let (_, user) = X509Certificate::from_der(&der).expect("X.509");
    assert_eq!(user.subject().to_string(), "CN=ops");
    let eku = user
        .extended_key_usage()
        .expect("ok")
        .expect("present")
        .value;
    assert!(eku.client_auth && !eku.server_auth);
    assert_eq!(mode(&d.join("user-ops/user-ops.key")), 0o400);
}

/// The node certificate is valid for server authentication, for `localhost` and 127.0.0.1,
/// under the CA, as a rustls client checks it.
fn verify_server(ca: &CertificateDer<'_>, node: &CertificateDer<'_>, what: &str) {
    let anchor = webpki::anchor_from_trusted_cert(ca).expect("CA as a trust anchor");
    let ee = webpki::EndEntityCert::try_from(node).expect("end-entity certificate");
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .unwrap_or_else(|error| panic!("{what}: chain: {error}"));
    for name in ["localhost", "127.0.0.1"] {
        ee.verify_is_valid_for_subject_name(&ServerName::try_from(name).expect("name"))
            .unwrap_or_else(|error| panic!("{what}: {name}: {error}"));
    }
}

#[allow(clippy::print_stdout, reason = "a test helper says what it skipped")]
fn openssl_verify(dir: &Path, ca: &str, node: &str) {
    let Ok(output) = Command::new("openssl")
        .current_dir(dir)
        .args(["verify", "-CAfile", ca, node])
        .output()
    else {
        println!("note: no `openssl` binary; `openssl verify` skipped");
        return;
    };
    assert!(
        output.status.success(),
        "openssl verify -CAfile {ca} {node}: {}",
        text(&output)
    );
}

fn check_node_contents(der: &CertificateDer<'_>) {
    let (_, node) = X509Certificate::from_der(der).expect("X.509");
    assert_eq!(node.subject().to_string(), "CN=eventstoredb-node");
    assert!(!node.is_ca());
    let usage = node.key_usage().expect("ok").expect("present").value;
    assert!(usage.digital_signature() && usage.key_encipherment() && !usage.key_cert_sign());
    let eku = node
        .extended_key_usage()
        .expect("ok")
        .expect("present")
        .value;
    assert!(eku.server_auth && eku.client_auth);
    assert_eq!(node.public_key().parsed().expect("key").key_size(), 2048);
}
