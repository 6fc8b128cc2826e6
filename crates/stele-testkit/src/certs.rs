//! Certificates for secure test nodes, made by the `stele` binary under test
//! (`stele certs create-ca` / `create-node`), as an operator would make them.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The password of the default `admin` user (`DefaultAdminPassword`).
pub const ADMIN_PASSWORD: &str = "changeit";

/// A CA made with `stele certs create-ca`: `<dir>/ca/ca.crt` and `ca.key`.
#[derive(Debug, Clone)]
pub struct TestCa {
    binary_path: PathBuf,
    /// The directory holding `ca.crt` (what `TrustedRootCertificatesPath` names).
    pub dir: PathBuf,
}

/// A node's certificate files.
#[derive(Debug, Clone)]
pub struct NodeTls {
    pub certificate_file: PathBuf,
    pub private_key_file: PathBuf,
    /// `TrustedRootCertificatesPath`.
    pub trusted_roots_dir: PathBuf,
    /// The CA certificate clients trust (`tlsCaFile`).
    pub ca_file: PathBuf,
}

fn run(binary_path: &Path, args: &[&str]) {
    let output = Command::new(binary_path)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {} {args:?}: {e}", binary_path.display()));
    assert!(
        output.status.success(),
        "{} {args:?} failed: {}{}",
        binary_path.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestCa {
    /// `stele certs create-ca -out <parent>/ca`.
    pub fn create(binary_path: impl Into<PathBuf>, parent: &Path) -> TestCa {
        let binary_path = binary_path.into();
        let dir = parent.join("ca");
        run(
            &binary_path,
            &["certs", "create-ca", "-out", &dir.display().to_string()],
        );
        TestCa { binary_path, dir }
    }

    /// `<dir>/ca.crt`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// An HTTP client that trusts this CA.
    pub fn http_client(&self, timeout: std::time::Duration) -> reqwest::Client {
        http_client_trusting(&self.ca_file(), timeout)
    }

    /// `stele certs create-node -out <out> -ip-addresses <ips> -dns-names localhost`, with
    /// `extra` flags (a `-common-name`, say).
    pub fn node(&self, out: &Path, ips: &str, extra: &[&str]) -> NodeTls {
        let ca_cert = self.ca_file().display().to_string();
        let ca_key = self.dir.join("ca.key").display().to_string();
        let out_text = out.display().to_string();
        let mut args = vec![
            "certs",
            "create-node",
            "-ca-certificate",
            &ca_cert,
            "-ca-key",
            &ca_key,
            "-out",
            &out_text,
            "-ip-addresses",
            ips,
            "-dns-names",
            "localhost",
        ];
        args.extend_from_slice(extra);
        run(&self.binary_path, &args);
        NodeTls {
            certificate_file: out.join("node.crt"),
            private_key_file: out.join("node.key"),
            trusted_roots_dir: self.dir.clone(),
            ca_file: self.ca_file(),
        }
    }
}

impl NodeTls {
    /// The command-line options that make a node serve with these files.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--certificate-file".into(),
            self.certificate_file.display().to_string(),
            "--certificate-private-key-file".into(),
            self.private_key_file.display().to_string(),
            "--trusted-root-certificates-path".into(),
            self.trusted_roots_dir.display().to_string(),
        ]
    }

    /// An HTTP client that trusts the CA.
    pub fn http_client(&self, timeout: std::time::Duration) -> reqwest::Client {
        http_client_trusting(&self.ca_file, timeout)
    }
}

/// An HTTP client that trusts the CA certificate in `ca_file`.
fn http_client_trusting(ca_file: &Path, timeout: std::time::Duration) -> reqwest::Client {
    let pem = std::fs::read(ca_file).expect("reading the CA certificate");
    let ca = reqwest::Certificate::from_pem(&pem).expect("the CA certificate parses");
    reqwest::Client::builder()
        .timeout(timeout)
        .add_root_certificate(ca)
        .build()
        .expect("building the HTTP client")
}
