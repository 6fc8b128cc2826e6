//! Certificate and key files as es-gencert-cli writes them: `<dir>/<name>.crt` read-only for
//! everyone (0444), `<dir>/<name>.key` read-only for the owner (0400), the directory created
//! as needed (0755). Existing files are never replaced without `force`, and the key is never
//! readable by others, not even while it is being written.

use std::fs::{self, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::CertError;

/// Mode of a written certificate file.
pub const CERT_MODE: u32 = 0o444;
/// Mode of a written private key file.
pub const KEY_MODE: u32 = 0o400;
/// Mode of a directory created for them.
pub const DIR_MODE: u32 = 0o755;
/// `create-node` without `-out` uses the first of `./node1` ... `./node<this>` that does not
/// exist (es-gencert-cli's limit).
pub const NODE_DIRS_MAX: u32 = 100;

/// Where a certificate and its key are (or would be) written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairPaths {
    /// `<dir>/<name>.crt`.
    pub cert: PathBuf,
    /// `<dir>/<name>.key`.
    pub key: PathBuf,
}

impl PairPaths {
    /// The two paths for `name` in `dir`.
    pub fn new(dir: &Path, name: &str) -> Self {
        Self {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        }
    }

    /// Fails with [`CertError::Exists`] if either file exists and `force` is not set.
    pub fn check_overwrite(&self, force: bool) -> Result<(), CertError> {
        if force {
            return Ok(());
        }
        let existing: Vec<PathBuf> = [&self.cert, &self.key]
            .into_iter()
            .filter(|path| path.symlink_metadata().is_ok())
            .cloned()
            .collect();
        if existing.is_empty() {
            Ok(())
        } else {
            Err(CertError::Exists(existing))
        }
    }
}

/// Writes a certificate and key pair; see the module docs.
pub fn write_pair(
    dir: &Path,
    name: &str,
    cert_pem: &str,
    key_pem: &str,
    force: bool,
) -> Result<PairPaths, CertError> {
    let paths = PairPaths::new(dir, name);
    paths.check_overwrite(force)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| CertError::io(dir, source))?;
    write_file(&paths.cert, cert_pem, CERT_MODE)?;
    write_file(&paths.key, key_pem, KEY_MODE)?;
    Ok(paths)
}

/// The first of `./node1` ... `./node100` (relative to `base`) that does not exist.
pub fn first_free_node_dir(base: &Path) -> Result<String, CertError> {
    (1..=NODE_DIRS_MAX)
        .map(|n| format!("node{n}"))
        .find(|name| base.join(name).symlink_metadata().is_err())
        .ok_or(CertError::NoFreeNodeDir)
}

/// A whole file as text.
pub fn read_text(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| CertError::io(path, source))
}

/// Replaces `path` (read-only files included) with a new file holding `text`, created with
/// owner-only permissions and then set to `mode`.
fn write_file(path: &Path, text: &str, mode: u32) -> Result<(), CertError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(CertError::io(path, source)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| CertError::io(path, source))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|source| CertError::io(path, source))?;
    fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|source| CertError::io(path, source))
}
