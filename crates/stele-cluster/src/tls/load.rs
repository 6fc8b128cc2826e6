//! Reading certificates, keys and trusted roots from files, with errors that name the file
//! and the option that pointed at it.

use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::RootCertStore;

/// Certificate files larger than this are refused (a chain of a few certificates is a few
/// KiB): a wrong path pointing at a large file fails fast.
pub const MAX_CERTIFICATE_FILE_BYTES: u64 = 1024 * 1024;
/// Files read from `TrustedRootCertificatesPath` at most.
pub const MAX_TRUSTED_ROOT_FILES: usize = 4096;

/// Why the TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{option} {}: {message}", path.display())]
    File {
        option: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("{0}")]
    Config(String),
}

fn file_error(option: &'static str, path: &Path, message: impl ToString) -> TlsError {
    TlsError::File {
        option,
        path: path.to_owned(),
        message: message.to_string(),
    }
}

fn read_bounded(option: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let metadata = std::fs::metadata(path).map_err(|e| file_error(option, path, e))?;
    if metadata.len() > MAX_CERTIFICATE_FILE_BYTES {
        return Err(file_error(
            option,
            path,
            format!(
                "the file has {} bytes, more than the {MAX_CERTIFICATE_FILE_BYTES} a certificate file may have",
                metadata.len()
            ),
        ));
    }
    std::fs::read(path).map_err(|e| file_error(option, path, e))
}

/// The certificates of a PEM file (a chain: leaf first, then intermediates), or of a DER
/// file holding one certificate.
pub fn certificates(
    option: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_bounded(option, path)?;
    if !bytes.windows(10).any(|w| w == b"-----BEGIN") {
        // DER: one certificate.
        return Ok(vec![CertificateDer::from(bytes)]);
    }
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(option, path, format!("not a PEM certificate file: {e}")))?;
    if certificates.is_empty() {
        return Err(file_error(option, path, "the file holds no certificate"));
    }
    Ok(certificates)
}

/// The private key of a PEM file: PKCS #8, PKCS #1 (RSA) or SEC1 (EC).
pub fn private_key(option: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_bounded(option, path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        file_error(
            option,
            path,
            format!(
                "not a PEM private key (PKCS #8, RSA or EC; encrypted keys are not supported): {e}"
            ),
        )
    })
}

/// Every certificate in the files of `dir` (`TrustedRootCertificatesPath` is a directory, as
/// EventStoreDB's is). Files that hold no certificate are skipped; a directory with no
/// certificate at all is an error.
pub fn trusted_roots(option: &'static str, dir: &Path) -> Result<RootCertStore, TlsError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        file_error(
            option,
            dir,
            format!("{e} (this option names a directory of trusted root certificates)"),
        )
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .take(MAX_TRUSTED_ROOT_FILES)
        .collect();
    paths.sort();
    let mut store = RootCertStore::empty();
    for path in &paths {
        let Ok(bytes) = read_bounded(option, path) else {
            continue;
        };
        for certificate in CertificateDer::pem_slice_iter(&bytes).flatten() {
            // A certificate that is not a usable trust anchor (a leaf with a key usage that
            // webpki refuses, a malformed one) is skipped, as OpenSSL's directory lookup does.
            let _ = store.add(certificate);
        }
    }
    if store.is_empty() {
        return Err(file_error(
            option,
            dir,
            "the directory holds no PEM certificate (put the CA certificate, ca.crt, there)",
        ));
    }
    Ok(store)
}
