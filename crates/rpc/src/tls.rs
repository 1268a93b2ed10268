//! TLS for JSON-RPC over HTTP (`--rpc-http-tls-*`), with rustls: the server's certificate and
//! key from a PKCS#12 keystore (Besu's format, with its password file) or a PEM file, and
//! optional client certificates, accepted by common name and SHA-256 fingerprint from Besu's
//! known-clients file or by a CA.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// The TLS configuration the HTTP server is given.
pub type ServerTlsConfig = rustls::ServerConfig;

/// TLS settings of the HTTP server, as given by Besu's flags.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// `--rpc-http-tls-keystore-file`: PKCS#12, or PEM holding the certificate chain and key.
    pub keystore_file: PathBuf,
    /// `--rpc-http-tls-keystore-password-file`: the PKCS#12 password (its first line).
    pub keystore_password_file: Option<PathBuf>,
    /// `--rpc-http-tls-client-auth-enabled`: clients must present a certificate.
    pub client_auth: bool,
    /// `--rpc-http-tls-known-clients-file`: lines of `<name> <SHA-256 fingerprint>`.
    pub known_clients_file: Option<PathBuf>,
    /// `--rpc-http-tls-ca-clients-enabled`: accept client certificates a CA signed, the CAs
    /// read from `--Xrpc-http-tls-ca-clients-file` or else the system's bundle.
    pub ca_clients: bool,
    /// The CA bundle for `ca_clients` (PEM).
    pub ca_clients_file: Option<PathBuf>,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A file could not be read.
    #[error("cannot read {flag} file {path}: {error}")]
    Read {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// A file's content is wrong.
    #[error("{flag} file {path}: {reason}")]
    Invalid {
        /// The flag naming the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The flags do not make a configuration.
    #[error("{0}")]
    Flag(String),
}

const KEYSTORE: &str = "--rpc-http-tls-keystore-file";
const PASSWORD: &str = "--rpc-http-tls-keystore-password-file";
const KNOWN: &str = "--rpc-http-tls-known-clients-file";
const CA: &str = "--Xrpc-http-tls-ca-clients-file";

/// The system's CA bundle, where Debian keeps it.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn read(flag: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|error| TlsConfigError::Read {
        flag,
        path: path.to_path_buf(),
        error,
    })
}

fn invalid(flag: &'static str, path: &Path, reason: impl Into<String>) -> TlsConfigError {
    TlsConfigError::Invalid {
        flag,
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The certificate chain and key of a PEM file.
fn pem_identity(path: &Path, data: &[u8]) -> Result<Identity, TlsConfigError> {
    let certs = CertificateDer::pem_slice_iter(data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(KEYSTORE, path, format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(KEYSTORE, path, "no CERTIFICATE in the PEM file"));
    }
    let key = PrivateKeyDer::from_pem_slice(data)
        .map_err(|e| invalid(KEYSTORE, path, format!("no usable PRIVATE KEY: {e}")))?;
    Ok((certs, key))
}

/// The certificate chain and key of a PKCS#12 keystore.
fn pkcs12_identity(settings: &TlsSettings, data: &[u8]) -> Result<Identity, TlsConfigError> {
    let path = &settings.keystore_file;
    let password = match &settings.keystore_password_file {
        Some(p) => {
            let text = String::from_utf8(read(PASSWORD, p)?)
                .map_err(|_| invalid(PASSWORD, p, "not UTF-8"))?;
            text.lines().next().unwrap_or_default().to_string()
        }
        None => {
            return Err(TlsConfigError::Flag(format!(
                "{KEYSTORE} {} is a PKCS#12 keystore: {PASSWORD} is needed",
                path.display()
            )))
        }
    };
    let store = p12_keystore::KeyStore::from_pkcs12(
        data,
        &password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| {
        invalid(
            KEYSTORE,
            path,
            format!("cannot open the PKCS#12 keystore: {e}"),
        )
    })?;
    let (_, chain) = store
        .private_key_chain()
        .ok_or_else(|| invalid(KEYSTORE, path, "the keystore holds no private key"))?;
    let certs: Vec<CertificateDer<'static>> = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    if certs.is_empty() {
        return Err(invalid(KEYSTORE, path, "the key has no certificate"));
    }
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
    Ok((certs, key))
}

/// Besu's known-clients file: `<common name> <SHA-256 fingerprint>` per line (the fingerprint
/// as hex, with or without colons); `#` starts a comment. A client is known when its
/// certificate has a listed fingerprint and the subject common name listed with it (compared
/// without regard to case), so a file entry cannot be borrowed by a certificate of another name.
fn known_clients(path: &Path) -> Result<HashMap<[u8; 32], Vec<String>>, TlsConfigError> {
    let text =
        String::from_utf8(read(KNOWN, path)?).map_err(|_| invalid(KNOWN, path, "not UTF-8"))?;
    let mut out: HashMap<[u8; 32], Vec<String>> = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let (name, fingerprint) = line
            .rsplit_once(char::is_whitespace)
            .map(|(name, fingerprint)| (name.trim(), fingerprint))
            .ok_or_else(|| {
                invalid(
                    KNOWN,
                    path,
                    format!(
                        "line {}: expected '<common name> <SHA-256 fingerprint>'",
                        i + 1
                    ),
                )
            })?;
        let bytes = hex::decode(fingerprint.replace(':', ""))
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                invalid(
                    KNOWN,
                    path,
                    format!(
                        "line {}: '{fingerprint}' is not a SHA-256 fingerprint (32 hex bytes)",
                        i + 1
                    ),
                )
            })?;
        out.entry(bytes).or_default().push(name.to_lowercase());
    }
    Ok(out)
}

/// The subject common name of a DER certificate, if it has one that is a string.
fn common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let name = cert.subject().iter_common_name().next()?.as_str().ok()?;
    Some(name.to_lowercase())
}

/// Accepts a client whose certificate is in the known-clients file, or else one a CA signed.
#[derive(Debug)]
struct ClientVerifier {
    known: HashMap<[u8; 32], Vec<String>>,
    ca: Option<Arc<dyn ClientCertVerifier>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.ca.as_ref().map_or(&[], |ca| ca.root_hint_subjects())
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let fingerprint: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if let Some(names) = self.known.get(&fingerprint) {
            if common_name(end_entity).is_some_and(|cn| names.contains(&cn)) {
                return Ok(ClientCertVerified::assertion());
            }
        }
        match &self.ca {
            Some(ca) => ca.verify_client_cert(end_entity, intermediates, now),
            None => Err(rustls::Error::General(
                "client certificate is not in the known-clients file".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
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
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
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

fn ca_verifier(
    settings: &TlsSettings,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsConfigError> {
    let (flag, path) = match &settings.ca_clients_file {
        Some(p) => (CA, p.clone()),
        None => (CA, PathBuf::from(SYSTEM_CA_BUNDLE)),
    };
    let data = read(flag, &path)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&data) {
        let cert = cert.map_err(|e| invalid(flag, &path, format!("bad PEM certificate: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| invalid(flag, &path, format!("unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(invalid(flag, &path, "no CA certificate"));
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| invalid(flag, &path, e.to_string()))
}

/// The rustls server configuration the settings describe.
pub fn server_config(settings: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, TlsConfigError> {
    let data = read(KEYSTORE, &settings.keystore_file)?;
    let (certs, key) = if data.trim_ascii_start().starts_with(b"-----BEGIN") {
        pem_identity(&settings.keystore_file, &data)?
    } else {
        pkcs12_identity(settings, &data)?
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsConfigError::Flag(format!("TLS: {e}")))?;
    let builder = if settings.client_auth {
        let known = match &settings.known_clients_file {
            Some(path) => known_clients(path)?,
            None => HashMap::new(),
        };
        let ca = settings
            .ca_clients
            .then(|| ca_verifier(settings, &provider))
            .transpose()?;
        if known.is_empty() && ca.is_none() {
            return Err(TlsConfigError::Flag(
                "--rpc-http-tls-client-auth-enabled needs --rpc-http-tls-known-clients-file \
                 (with at least one client) or --rpc-http-tls-ca-clients-enabled"
                    .into(),
            ));
        }
        builder.with_client_cert_verifier(Arc::new(ClientVerifier {
            known,
            ca,
            provider,
        }))
    } else {
        builder.with_no_client_auth()
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| invalid(KEYSTORE, &settings.keystore_file, e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
