//! Unit tests of `stele certs`: the certificates' contents (parsed with x509-parser), their
//! chains (verified with rustls-webpki, as rustls verifies a server, and with the `openssl`
//! binary where it exists), the files and the command line.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use time::macros::datetime;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use super::cli::{go_style_args, CreateCa, CreateNode, CreateUser};
use super::*;

fn parse<'a>(der: &'a CertificateDer<'_>) -> X509Certificate<'a> {
    X509Certificate::from_der(der).expect("X.509").1
}

fn common_name(cert: &X509Certificate<'_>) -> String {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .expect("a CN")
        .to_owned()
}

/// Verifies `leaf` for server authentication against `root` through `intermediates`, for
/// each of `names`; the error text otherwise.
fn verify_server(
    root: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    leaf: &CertificateDer<'_>,
    names: &[&str],
) -> Result<(), String> {
    let anchor = webpki::anchor_from_trusted_cert(root).map_err(|e| e.to_string())?;
    let ee = webpki::EndEntityCert::try_from(leaf).map_err(|e| e.to_string())?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        intermediates,
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| format!("chain: {e}"))?;
    for name in names {
        let server_name = ServerName::try_from(*name).map_err(|e| e.to_string())?;
        ee.verify_is_valid_for_subject_name(&server_name)
            .map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

fn years_between(cert: &X509Certificate<'_>) -> i64 {
    let validity = cert.validity();
    (validity.not_after.timestamp() - validity.not_before.timestamp()) / (365 * 86_400)
}

fn localhost_names() -> SubjectNames {
    SubjectNames::parse("127.0.0.1", "localhost").expect("names")
}

#[allow(clippy::print_stdout, reason = "a test helper says what it skipped")]
fn openssl_exists() -> bool {
    let found = Command::new("openssl").arg("version").output().is_ok();
    if !found {
        println!("note: no `openssl` binary; its part of this test is skipped");
    }
    found
}

#[test]
fn root_ca_is_made_as_es_gencert_cli_makes_it() {
    let ca = Authority::generate_root(0).expect("CA");
    let cert = parse(ca.certified_key().cert_der());
    let cn = common_name(&cert);
    let serial_hex = cert.raw_serial_as_string().replace(':', "");
    assert_eq!(
        cn,
        format!("EventStoreDB CA {}", serial_hex.trim_start_matches('0'))
    );
    assert_eq!(
        cert.subject().to_string(),
        format!("CN={cn}, O=Event Store Ltd, C=UK"),
        "subject"
    );
    assert_eq!(cert.issuer(), cert.subject(), "self-signed");
    let constraints = cert
        .basic_constraints()
        .expect("ok")
        .expect("present")
        .value;
    assert!(constraints.ca);
    assert_eq!(
        constraints.path_len_constraint,
        Some(u32::from(ROOT_CA_MAX_PATH_LEN))
    );
    let usage = cert.key_usage().expect("ok").expect("present").value;
    assert!(usage.key_cert_sign() && usage.crl_sign());
    assert!(!usage.digital_signature());
    assert_eq!(years_between(&cert), 5, "0 days means 5 years");
    assert_eq!(
        cert.public_key().parsed().expect("key").key_size(),
        2048,
        "RSA 2048"
    );
    let days = parse(
        Authority::generate_root(10)
            .expect("CA")
            .certified_key()
            .cert_der(),
    )
    .validity()
    .time_to_expiration()
    .expect("valid")
    .whole_days();
    assert!((9..=10).contains(&days), "-days 10 gives {days} days");
}

#[test]
fn node_certificate_has_the_names_and_usages_of_a_node() {
    let ca = Authority::generate_root(0).expect("CA");
    let names = SubjectNames::parse("127.0.0.1,10.0.0.7", "localhost,node1.example").expect("ok");
    let node = node_certificate(&ca, &names, NODE_COMMON_NAME, 0).expect("node");
    let cert = parse(node.cert_der());
    assert_eq!(cert.subject().to_string(), "CN=eventstoredb-node");
    assert_eq!(
        cert.issuer(),
        parse(ca.certified_key().cert_der()).subject()
    );
    assert!(!cert.is_ca());
    let usage = cert.key_usage().expect("ok").expect("present").value;
    assert!(usage.digital_signature() && usage.key_encipherment());
    assert!(!usage.key_cert_sign());
    let eku = cert
        .extended_key_usage()
        .expect("ok")
        .expect("present")
        .value;
    assert!(eku.server_auth && eku.client_auth);
    let sans = cert
        .subject_alternative_name()
        .expect("ok")
        .expect("present")
        .value;
    let sans: Vec<String> = sans
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(dns) => format!("DNS:{dns}"),
            GeneralName::IPAddress(ip) => format!("IP:{ip:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sans,
        [
            "IP:[127, 0, 0, 1]",
            "IP:[10, 0, 0, 7]",
            "DNS:localhost",
            "DNS:node1.example"
        ]
    );
    assert!(
        cert.extensions().iter().any(|ext| matches!(
            ext.parsed_extension(),
            ParsedExtension::AuthorityKeyIdentifier(_)
        )),
        "an Authority Key Identifier (OpenSSL's strict mode requires it)"
    );
    assert_eq!(years_between(&cert), 1, "0 days means 1 year");
    verify_server(
        ca.certified_key().cert_der(),
        &[],
        node.cert_der(),
        &["localhost", "node1.example", "127.0.0.1", "10.0.0.7"],
    )
    .expect("the node verifies as a server for each of its names");
    assert!(verify_server(
        ca.certified_key().cert_der(),
        &[],
        node.cert_der(),
        &["other.example"]
    )
    .is_err());
    let other_ca = Authority::generate_root(0).expect("CA");
    assert!(
        verify_server(
            other_ca.certified_key().cert_der(),
            &[],
            node.cert_der(),
            &["localhost"]
        )
        .is_err(),
        "another CA does not vouch for it"
    );
}

#[test]
fn intermediate_ca_signs_nodes_that_chain_to_the_root() {
    let root = Authority::generate_root(0).expect("root");
    let intermediate = root.generate_intermediate(0).expect("intermediate");
    let cert = parse(intermediate.certified_key().cert_der());
    assert!(common_name(&cert).starts_with("EventStoreDB Intermediate CA "));
    assert_eq!(
        cert.issuer(),
        parse(root.certified_key().cert_der()).subject()
    );
    let constraints = cert
        .basic_constraints()
        .expect("ok")
        .expect("present")
        .value;
    assert!(constraints.ca && constraints.path_len_constraint.is_none());
    let node =
        node_certificate(&intermediate, &localhost_names(), NODE_COMMON_NAME, 0).expect("node");
    verify_server(
        root.certified_key().cert_der(),
        &[intermediate.certified_key().cert_der().clone()],
        node.cert_der(),
        &["localhost", "127.0.0.1"],
    )
    .expect("root -> intermediate -> node");
}

#[test]
fn user_certificate_is_a_client_certificate_named_after_the_user() {
    let ca = Authority::generate_root(0).expect("CA");
    let user = user_certificate(&ca, "ops", 0).expect("user");
    let cert = parse(user.cert_der());
    assert_eq!(cert.subject().to_string(), "CN=ops");
    let eku = cert
        .extended_key_usage()
        .expect("ok")
        .expect("present")
        .value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(cert.subject_alternative_name().expect("ok").is_none());
}

#[test]
fn dev_certificate_is_its_own_root() {
    let dev = dev_certificate().expect("dev");
    let cert = parse(dev.cert_der());
    assert_eq!(cert.subject().to_string(), "CN=localhost");
    assert_eq!(cert.issuer(), cert.subject(), "self-signed");
    assert!(
        !cert.is_ca(),
        "CA:TRUE would be refused by rustls as a server certificate"
    );
    verify_server(
        dev.cert_der(),
        &[],
        dev.cert_der(),
        &["localhost", "127.0.0.1"],
    )
    .expect("trusted as its own anchor");
    assert!(verify_server(dev.cert_der(), &[], dev.cert_der(), &["127.0.0.2"]).is_err());
    let key =
        PrivateKeyDer::from_pem_slice(dev.key_pem().as_bytes()).expect("rustls reads the key");
    assert!(matches!(key, PrivateKeyDer::Pkcs8(_)), "PKCS #8");
}

#[test]
fn dev_certificate_verifies_with_openssl() {
    if !openssl_exists() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = dev_certificate()
        .expect("dev")
        .write(dir.path(), "dev", false)
        .expect("write");
    for extra in [&[][..], &["-purpose", "sslserver"], &["-x509_strict"]] {
        let output = Command::new("openssl")
            .arg("verify")
            .args(extra)
            .arg("-CAfile")
            .arg(&paths.cert)
            .arg(&paths.cert)
            .output()
            .expect("openssl");
        assert!(
            output.status.success(),
            "openssl verify {extra:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A TLS server presenting the certificate, and a client that fetches it with
/// `ssl.get_server_certificate` and then trusts exactly that (as esdbclient's tests do), with
/// host-name checks and OpenSSL's strict mode on.
const PYTHON_FETCH_AND_TRUST: &str = r#"
import socket, ssl, sys, threading, tempfile, os
cert, key = sys.argv[1], sys.argv[2]
server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_ctx.load_cert_chain(cert, key)
listener = socket.create_server(("127.0.0.1", 0))
port = listener.getsockname()[1]
def serve():
    for _ in range(2):
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass
threading.Thread(target=serve, daemon=True).start()
fetched = ssl.get_server_certificate(("localhost", port))
with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as f:
    f.write(fetched)
ctx = ssl.create_default_context(cafile=f.name)
for flag in ("VERIFY_X509_STRICT",):
    if hasattr(ssl, flag):
        ctx.verify_flags |= getattr(ssl, flag)
with socket.create_connection(("localhost", port)) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        print("handshake ok", tls.version(), "strict", bool(ctx.verify_flags & ssl.VERIFY_X509_STRICT))
        tls.send(b"x")
"#;

#[test]
fn dev_certificate_is_trusted_by_python_ssl_once_fetched() {
    if Command::new("python3").arg("--version").output().is_err() {
        println!("note: no `python3`; this test is skipped");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = dev_certificate()
        .expect("dev")
        .write(dir.path(), "dev", false)
        .expect("write");
    let output = Command::new("python3")
        .arg("-c")
        .arg(PYTHON_FETCH_AND_TRUST)
        .arg(&paths.cert)
        .arg(&paths.key)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("handshake ok"),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_ca_read_back_from_pem_signs_and_its_key_must_match() {
    let ca = Authority::generate_root(0).expect("CA");
    let key = ca.certified_key().key_pem().to_owned();
    let loaded = Authority::from_pem(ca.cert_pem(), &key).expect("read back");
    let node = node_certificate(&loaded, &localhost_names(), NODE_COMMON_NAME, 0).expect("node");
    verify_server(
        ca.certified_key().cert_der(),
        &[],
        node.cert_der(),
        &["localhost"],
    )
    .expect("signed by the loaded CA");

    let other = Authority::generate_root(0).expect("CA");
    let error = Authority::from_pem(ca.cert_pem(), other.certified_key().key_pem()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("not the key of the CA certificate"),
        "{error}"
    );
    let leaf = node_certificate(&ca, &localhost_names(), NODE_COMMON_NAME, 0).expect("node");
    let error = Authority::from_pem(leaf.cert_pem(), leaf.key_pem()).unwrap_err();
    assert!(
        error.to_string().contains("not a CA certificate"),
        "{error}"
    );
}

/// es-gencert-cli writes PKCS #1 keys (`RSA PRIVATE KEY`); a CA it made must sign here too.
#[test]
fn a_ca_with_a_pkcs1_key_signs() {
    if !openssl_exists() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Authority::generate_root(0).expect("CA");
    let paths = ca.write(dir.path(), "ca", false).expect("write");
    let pkcs1 = dir.path().join("ca-pkcs1.key");
    let status = Command::new("openssl")
        .args(["rsa", "-traditional", "-in"])
        .arg(&paths.key)
        .arg("-out")
        .arg(&pkcs1)
        .output()
        .expect("openssl");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let text = std::fs::read_to_string(&pkcs1).expect("read");
    assert!(
        text.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
        "{text}"
    );
    let loaded = Authority::load(&paths.cert, &pkcs1).expect("PKCS #1 key accepted");
    node_certificate(&loaded, &localhost_names(), NODE_COMMON_NAME, 0).expect("signs");
}

#[test]
fn files_have_es_gencert_cli_modes_and_are_replaced_only_with_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ca");
    let ca = Authority::generate_root(0).expect("CA");
    let paths = ca.write(&out, "ca", false).expect("write");
    let mode = |path: &Path| std::fs::metadata(path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&paths.cert), CERT_MODE);
    assert_eq!(mode(&paths.key), KEY_MODE);

    let again = Authority::generate_root(0).expect("CA");
    let error = again.write(&out, "ca", false).unwrap_err();
    assert!(
        error.to_string().contains("Use -force to proceed"),
        "{error}"
    );
    assert_eq!(
        std::fs::read_to_string(&paths.cert).expect("read"),
        ca.cert_pem(),
        "kept"
    );
    again.write(&out, "ca", true).expect("replaced with force");
    assert_eq!(
        std::fs::read_to_string(&paths.cert).expect("read"),
        again.cert_pem()
    );
    assert_eq!(mode(&paths.key), KEY_MODE);
}

#[test]
fn commands_number_nodes_and_name_users_as_es_gencert_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path();
    let ca_dir = base.join("ca");
    CreateCa {
        days: 0,
        out: ca_dir.clone(),
        name: "ca".to_owned(),
        ca_certificate: None,
        ca_key: None,
        force: false,
    }
    .run()
    .expect("create-ca");
    let node = CreateNode {
        ca_certificate: ca_dir.join("ca.crt"),
        ca_key: ca_dir.join("ca.key"),
        ip_addresses: "127.0.0.1".to_owned(),
        dns_names: String::new(),
        common_name: NODE_COMMON_NAME.to_owned(),
        days: 0,
        out: String::new(),
        name: "node".to_owned(),
        force: false,
    };
    let message = node.run(base).expect("node1");
    assert_eq!(
        message,
        "A node certificate & key file have been generated in the 'node1' directory."
    );
    assert!(base.join("node1/node1.crt").exists() && base.join("node1/node1.key").exists());
    node.run(base).expect("node2");
    assert!(base.join("node2/node2.crt").exists());
    assert_eq!(first_free_node_dir(base).expect("free"), "node3");

    let error = CreateNode {
        ip_addresses: String::new(),
        ..node.clone()
    }
    .run(base)
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("at least one IP address or DNS name"),
        "{error}"
    );
    let error = CreateNode {
        days: -1,
        ..node.clone()
    }
    .run(base)
    .unwrap_err();
    assert_eq!(error.to_string(), "days must be positive");

    let user = CreateUser {
        username: "admin".to_owned(),
        ca_certificate: ca_dir.join("ca.crt"),
        ca_key: ca_dir.join("ca.key"),
        days: 0,
        out: base.join("user-admin").display().to_string(),
        name: String::new(),
        force: false,
    };
    user.run().expect("create-user");
    assert!(base.join("user-admin/user-admin.crt").exists());
}

#[test]
fn intermediate_through_the_command_needs_both_flags() {
    let error = CreateCa {
        days: 0,
        out: "./unused".into(),
        name: "ca".to_owned(),
        ca_certificate: Some("./ca/ca.crt".into()),
        ca_key: None,
        force: false,
    }
    .run()
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "both -ca-certificate and -ca-key options are required"
    );
}

#[test]
fn one_dash_flags_become_two_and_values_stay() {
    let args: Vec<String> = [
        "create-node",
        "-out",
        "./n",
        "-days",
        "-1",
        "-force",
        "--name",
        "x",
        "-force=false",
        "-ip-addresses=1.2.3.4",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(
        go_style_args(&args),
        [
            "create-node",
            "--out",
            "./n",
            "--days",
            "-1",
            "--force",
            "--name",
            "x",
            "--force=false",
            "--ip-addresses=1.2.3.4"
        ]
    );
}

#[test]
fn create_certs_makes_a_root_an_intermediate_and_nodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display();
    let yaml = format!(
        "certificates:\n  ca-certs:\n    - out: {d}/root_ca\n    - out: {d}/intermediate_ca\n      \
         ca-certificate: {d}/root_ca/ca.crt\n      ca-key: {d}/root_ca/ca.key\n      days: 5\n  \
         node-certs:\n    - out: {d}/node1\n      ca-certificate: {d}/intermediate_ca/ca.crt\n      \
         ca-key: {d}/intermediate_ca/ca.key\n      ip-addresses: 127.0.0.1\n      dns-names: localhost\n"
    );
    let config = dir.path().join("certs.yml");
    std::fs::write(&config, yaml).expect("write");
    let messages = config_file::run(&config, false).expect("create-certs");
    assert_eq!(messages.len(), 3, "{messages:?}");
    let read = |path: &str| {
        let text = std::fs::read_to_string(dir.path().join(path)).expect("read");
        super::generate::first_certificate(&text).expect("PEM")
    };
    verify_server(
        &read("root_ca/ca.crt"),
        &[read("intermediate_ca/ca.crt")],
        &read("node1/node.crt"),
        &["localhost", "127.0.0.1"],
    )
    .expect("the chain the file describes");
    let error = config_file::run(&config, false).unwrap_err();
    assert!(matches!(error, CertError::Exists(_)), "{error}");
    config_file::run(&config, true).expect("with -force");
}

#[test]
fn validity_defaults_follow_go_add_date() {
    let now = datetime!(2028-02-29 12:00 UTC);
    assert_eq!(not_after(now, 0, 1), datetime!(2029-03-01 12:00 UTC));
    assert_eq!(not_after(now, 0, 5), datetime!(2033-03-01 12:00 UTC));
    assert_eq!(
        not_after(datetime!(2026-01-15 00:00 UTC), 0, 5),
        datetime!(2031-01-15 00:00 UTC)
    );
    assert_eq!(not_after(now, 30, 5), datetime!(2028-03-30 12:00 UTC));
}

#[test]
fn subject_names_parse_comma_lists() {
    let names = SubjectNames::parse("127.0.0.1, ::1", "a.example,,b.example").expect("ok");
    assert_eq!(
        names.ips,
        [
            "127.0.0.1".parse::<IpAddr>().expect("ip"),
            "::1".parse().expect("ip")
        ]
    );
    assert_eq!(names.dns_names, ["a.example", "b.example"]);
    let error = SubjectNames::parse("300.1.1.1", "").unwrap_err();
    assert_eq!(error.to_string(), "invalid IP address: 300.1.1.1");
}
