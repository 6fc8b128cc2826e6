//! Making certificates in memory: CAs ([`Authority`]), node, user and `--dev` certificates
//! ([`CertifiedKey`]). Nothing here touches the file system except [`Authority::load`];
//! writing is `files.rs`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, PKCS_RSA_SHA256,
};
use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use super::files::{self, PairPaths};
use super::CertError;

/// CA validity when `-days` is 0, in years (es-gencert-cli's default).
pub const CA_DEFAULT_YEARS: i32 = 5;
/// Node and user certificate validity when `-days` is 0, in years (es-gencert-cli's default).
pub const LEAF_DEFAULT_YEARS: i32 = 1;
/// Validity of the `--dev` certificate, in years.
pub const DEV_YEARS: i32 = 1;
/// The path length a root CA allows below it (es-gencert-cli's `MaxPathLen`).
pub const ROOT_CA_MAX_PATH_LEN: u8 = 2;
/// Serial numbers are this many random bytes (es-gencert-cli's 128 bits).
pub const SERIAL_BYTES: usize = 16;
/// The default common name of node certificates (`-common-name`), which EventStoreDB up to
/// 22.10 required of other nodes.
pub const NODE_COMMON_NAME: &str = "eventstoredb-node";
/// The organisation and country in the subject of every CA es-gencert-cli makes.
pub const CA_ORGANIZATION: &str = "Event Store Ltd";
/// See [`CA_ORGANIZATION`].
pub const CA_COUNTRY: &str = "UK";
/// The host name (CN and DNS SAN) of the `--dev` certificate.
pub const DEV_HOST: &str = "localhost";

/// A certificate and its private key, both PEM. The key is PKCS #8 (`PRIVATE KEY`), which
/// rustls-pki-types, OpenSSL and .NET read.
#[derive(Clone)]
pub struct CertifiedKey {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

impl CertifiedKey {
    /// The certificate, DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// The certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key, PKCS #8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Writes `<dir>/<name>.crt` (mode 0444) and `<dir>/<name>.key` (0400), creating `dir`;
    /// refuses to replace either file unless `force`.
    pub fn write(&self, dir: &Path, name: &str, force: bool) -> Result<PairPaths, CertError> {
        files::write_pair(dir, name, &self.cert_pem, &self.key_pem, force)
    }
}

impl std::fmt::Debug for CertifiedKey {
    /// Shows the certificate, never the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertifiedKey")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .finish()
    }
}

/// A certificate authority that can sign: its certificate and its key.
pub struct Authority {
    cert: CertifiedKey,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    /// A new self-signed root CA as es-gencert-cli's `create-ca` makes it: RSA 2048, CN
    /// `EventStoreDB CA <serial hex>`, O `Event Store Ltd`, C `UK`, path length
    /// [`ROOT_CA_MAX_PATH_LEN`], key usages CertSign and CRLSign, valid for `days` days
    /// (0 = [`CA_DEFAULT_YEARS`] years).
    pub fn generate_root(days: u32) -> Result<Self, CertError> {
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256)?;
        let params = ca_params(
            "EventStoreDB CA",
            IsCa::Ca(BasicConstraints::Constrained(ROOT_CA_MAX_PATH_LEN)),
            days,
        )?;
        let cert = params.self_signed(&key)?;
        Ok(Self::from_parts(cert.der().clone(), params, key))
    }

    /// A new intermediate CA signed by `self` (`create-ca -ca-certificate -ca-key`): CN
    /// `EventStoreDB Intermediate CA <serial hex>`, no path length limit, otherwise as
    /// [`Authority::generate_root`].
    pub fn generate_intermediate(&self, days: u32) -> Result<Self, CertError> {
        let key = KeyPair::generate_for(&PKCS_RSA_SHA256)?;
        let mut params = ca_params(
            "EventStoreDB Intermediate CA",
            IsCa::Ca(BasicConstraints::Unconstrained),
            days,
        )?;
        params.use_authority_key_identifier_extension = true;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Self::from_parts(cert.der().clone(), params, key))
    }

    /// A CA from its PEM certificate and PEM key (PKCS #8, PKCS #1 `RSA PRIVATE KEY` as
    /// es-gencert-cli writes, or SEC1). Refuses a certificate that is not a CA and a key that
    /// is not the certificate's.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CertError> {
        let key = KeyPair::from_pem(key_pem).map_err(|error| {
            CertError::invalid("the CA key", format!("not a usable private key ({error})"))
        })?;
        let cert_der = first_certificate(cert_pem)
            .ok_or_else(|| CertError::invalid("the CA certificate", "no PEM CERTIFICATE in it"))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der).map_err(|error| {
            CertError::invalid("the CA certificate", format!("not X.509 ({error})"))
        })?;
        if !parsed.is_ca() {
            return Err(CertError::invalid(
                "the CA certificate",
                "it is not a CA certificate (BasicConstraints CA:TRUE)",
            ));
        }
        if parsed.public_key().raw != key.subject_public_key_info().as_slice() {
            return Err(CertError::invalid(
                "the CA key",
                "it is not the key of the CA certificate",
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key).map_err(|error| {
            CertError::invalid(
                "the CA certificate",
                format!("cannot sign with it ({error})"),
            )
        })?;
        let cert = CertifiedKey {
            cert_pem: pem_certificate(&cert_der),
            cert_der,
            key_pem: issuer.key().serialize_pem(),
        };
        Ok(Self { cert, issuer })
    }

    /// [`Authority::from_pem`] from the files `cert_path` and `key_path`.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CertError> {
        let cert_pem = files::read_text(cert_path)?;
        let key_pem = files::read_text(key_path)?;
        Self::from_pem(&cert_pem, &key_pem).map_err(|error| error.at(cert_path, key_path))
    }

    /// The CA's certificate and key.
    pub fn certified_key(&self) -> &CertifiedKey {
        &self.cert
    }

    /// The CA's certificate, PEM (what a client's `tlsCAFile` names).
    pub fn cert_pem(&self) -> &str {
        &self.cert.cert_pem
    }

    /// Writes `<dir>/<name>.crt` and `<dir>/<name>.key`; see [`CertifiedKey::write`].
    pub fn write(&self, dir: &Path, name: &str, force: bool) -> Result<PairPaths, CertError> {
        self.cert.write(dir, name, force)
    }

    fn from_parts(
        cert_der: CertificateDer<'static>,
        params: CertificateParams,
        key: KeyPair,
    ) -> Self {
        let cert = CertifiedKey {
            cert_pem: pem_certificate(&cert_der),
            cert_der,
            key_pem: key.serialize_pem(),
        };
        Self {
            cert,
            issuer: Issuer::new(params, key),
        }
    }
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority")
            .field("cert", &self.cert)
            .finish()
    }
}

/// The names a node certificate is valid for (its subject alternative names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectNames {
    /// IP address SANs.
    pub ips: Vec<IpAddr>,
    /// DNS name SANs.
    pub dns_names: Vec<String>,
}

impl SubjectNames {
    /// From es-gencert-cli's comma-separated `-ip-addresses` and `-dns-names` (either may be
    /// empty, not both).
    pub fn parse(ip_addresses: &str, dns_names: &str) -> Result<Self, CertError> {
        let ips = split_list(ip_addresses)
            .map(|ip| {
                ip.parse()
                    .map_err(|_| CertError::Usage(format!("invalid IP address: {ip}")))
            })
            .collect::<Result<Vec<IpAddr>, _>>()?;
        let dns_names: Vec<String> = split_list(dns_names).map(str::to_owned).collect();
        if ips.is_empty() && dns_names.is_empty() {
            return Err(CertError::Usage(
                "at least one IP address or DNS name needs to be specified with -ip-addresses or \
                 -dns-names"
                    .to_owned(),
            ));
        }
        Ok(Self { ips, dns_names })
    }
}

/// A node (server) certificate signed by `ca`, as es-gencert-cli's `create-node` makes it:
/// RSA 2048, subject CN `common_name` only, BasicConstraints CA:FALSE, key usages
/// DigitalSignature and KeyEncipherment, extended key usages clientAuth and serverAuth (a node
/// is both when it talks to other nodes), the IP and DNS SANs of `names`, valid for `days`
/// days (0 = [`LEAF_DEFAULT_YEARS`] year).
pub fn node_certificate(
    ca: &Authority,
    names: &SubjectNames,
    common_name: &str,
    days: u32,
) -> Result<CertifiedKey, CertError> {
    let mut params = leaf_params(common_name, days, LEAF_DEFAULT_YEARS)?;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    params.subject_alt_names = subject_alt_names(names)?;
    sign(params, ca)
}

/// A user (client) certificate signed by `ca`, as `create-user` makes it: CN `username`,
/// extended key usage clientAuth only, otherwise as [`node_certificate`] without SANs.
pub fn user_certificate(
    ca: &Authority,
    username: &str,
    days: u32,
) -> Result<CertifiedKey, CertError> {
    let mut params = leaf_params(username, days, LEAF_DEFAULT_YEARS)?;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    sign(params, ca)
}

/// A self-signed certificate for EventStoreDB's `--dev` mode: CN [`DEV_HOST`], SANs DNS
/// `localhost` and IP 127.0.0.1, BasicConstraints CA:FALSE, key usages DigitalSignature and
/// KeyEncipherment, extended key usages serverAuth and clientAuth, RSA 2048, valid for
/// [`DEV_YEARS`] year. A client trusts it by using the certificate itself as its root (the
/// Python client fetches it with `ssl.get_server_certificate`); see the module docs for
/// which verifiers accept that.
pub fn dev_certificate() -> Result<CertifiedKey, CertError> {
    let key = KeyPair::generate_for(&PKCS_RSA_SHA256)?;
    let mut params = leaf_params(DEV_HOST, 0, DEV_YEARS)?;
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.subject_alt_names = subject_alt_names(&SubjectNames {
        ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        dns_names: vec![DEV_HOST.to_owned()],
    })?;
    let cert = params.self_signed(&key)?;
    let cert_der = cert.der().clone();
    Ok(CertifiedKey {
        cert_pem: pem_certificate(&cert_der),
        cert_der,
        key_pem: key.serialize_pem(),
    })
}

/// The end of a validity period starting `now`: `days` days, or `default_years` calendar
/// years when `days` is 0 (as Go's `AddDate`, so 29 February plus a year is 1 March).
pub fn not_after(now: OffsetDateTime, days: u32, default_years: i32) -> OffsetDateTime {
    if days != 0 {
        return now + Duration::days(i64::from(days));
    }
    let year = now.year() + default_years;
    now.replace_year(year).unwrap_or_else(|_| {
        // Only 29 February of a leap year has no counterpart; Go rolls it over to 1 March.
        now.replace_day(28)
            .and_then(|day| day.replace_year(year))
            .map_or(
                now + Duration::days(365 * i64::from(default_years)),
                |day| day + Duration::days(1),
            )
    })
}

fn ca_params(cn_prefix: &str, is_ca: IsCa, days: u32) -> Result<CertificateParams, CertError> {
    let serial = random_serial()?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(
        DnType::CommonName,
        format!("{cn_prefix} {}", serial_hex(&serial)),
    );
    name.push(DnType::OrganizationName, CA_ORGANIZATION);
    name.push(DnType::CountryName, CA_COUNTRY);
    params.distinguished_name = name;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.is_ca = is_ca;
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = not_after(now, days, CA_DEFAULT_YEARS);
    Ok(params)
}

fn leaf_params(
    common_name: &str,
    days: u32,
    default_years: i32,
) -> Result<CertificateParams, CertError> {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    params.serial_number = Some(SerialNumber::from_slice(&random_serial()?));
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    let now = OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = not_after(now, days, default_years);
    Ok(params)
}

fn sign(mut params: CertificateParams, ca: &Authority) -> Result<CertifiedKey, CertError> {
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate_for(&PKCS_RSA_SHA256)?;
    let cert = params.signed_by(&key, &ca.issuer)?;
    let cert_der = cert.der().clone();
    Ok(CertifiedKey {
        cert_pem: pem_certificate(&cert_der),
        cert_der,
        key_pem: key.serialize_pem(),
    })
}

fn subject_alt_names(names: &SubjectNames) -> Result<Vec<SanType>, CertError> {
    let mut sans: Vec<SanType> = names.ips.iter().copied().map(SanType::IpAddress).collect();
    for dns in &names.dns_names {
        let ia5 = dns
            .clone()
            .try_into()
            .map_err(|_| CertError::Usage(format!("invalid DNS name: {dns}")))?;
        sans.push(SanType::DnsName(ia5));
    }
    Ok(sans)
}

fn split_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

fn random_serial() -> Result<[u8; SERIAL_BYTES], CertError> {
    let mut serial = [0u8; SERIAL_BYTES];
    getrandom::fill(&mut serial)
        .map_err(|error| CertError::invalid("the random serial number", error.to_string()))?;
    Ok(serial)
}

/// The serial as Go's `big.Int.Text(16)` prints it: lowercase, no leading zeros.
fn serial_hex(serial: &[u8]) -> String {
    let hex: String = serial.iter().map(|byte| format!("{byte:02x}")).collect();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// The DER of the first `CERTIFICATE` block of a PEM text.
pub(super) fn first_certificate(pem: &str) -> Option<CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .and_then(Result::ok)
}

fn pem_certificate(der: &CertificateDer<'_>) -> String {
    pem::encode_config(
        &pem::Pem::new("CERTIFICATE", der.to_vec()),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    )
}
