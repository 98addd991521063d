//! TLS for the bank, through rustls with ring as its crypto provider (no aws-lc): the server's
//! certificate and key (`serve.rs` does the handshake per connection), the certificate
//! authorities the peer client checks other banks against (`interbank`), and the demo's own CA
//! and per-bank certificates ([`make_ca`], [`make_bank_cert`]).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A certificate chain and its private key, both PEM files: with them the bank serves HTTPS only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub cert_chain: PathBuf,
    pub private_key: PathBuf,
}

/// Makes ring the process's default crypto provider, which reqwest (built with
/// `rustls-no-provider`) uses for every client it builds. Idempotent; a provider already
/// installed is kept.
pub fn install_provider() {
    let _ = ring().install_default();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(ring())
}

/// rustls's ring provider. rustls 0.23.48 deprecates it for lacking post-quantum key exchange
/// (only its aws-lc provider has that); ring is kept for the build (aws-lc is about 75 s more on
/// two cores), and the classical suites it offers are rustls's defaults otherwise.
#[allow(deprecated)]
fn ring() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// Every certificate in a PEM file (a chain, or a CA bundle); none is an error.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read certificates from {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The server side of the handshake: this bank's chain and key, HTTP/1.1 only.
pub fn server_config(tls: &ServerTls) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain = read_certs(&tls.cert_chain)?;
    let key = PrivateKeyDer::from_pem_file(&tls.private_key).map_err(|e| {
        format!(
            "cannot read a private key from {}: {e}",
            tls.private_key.display()
        )
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            format!(
                "{} and {} are not a certificate and its key: {e}",
                tls.cert_chain.display(),
                tls.private_key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The client other banks are called with, `configure`d: with `ca`, their certificates are
/// checked against that bundle only (the consortium's CA); without, against the system's roots,
/// and on a system that has none (a bare container, where reqwest cannot build that verifier)
/// against none, so plain-HTTP peers still work instead of the bank not starting.
pub fn peer_client(
    ca: Option<&Path>,
    configure: impl Fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
) -> Result<reqwest::Client, String> {
    install_provider();
    let built = match ca {
        None => configure(reqwest::Client::builder()).build().or_else(|_| {
            configure(reqwest::Client::builder())
                .tls_certs_only([])
                .build()
        }),
        Some(ca) => {
            let pem =
                std::fs::read(ca).map_err(|e| format!("cannot read {}: {e}", ca.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                format!("{} is not a PEM bundle of certificates: {e}", ca.display())
            })?;
            if certs.is_empty() {
                return Err(format!("{} holds no PEM certificate", ca.display()));
            }
            configure(reqwest::Client::builder())
                .tls_certs_only(certs)
                .build()
        }
    };
    built.map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// A CA named `ca_name` and a certificate for `bank_name` signed by it, written under `dir`
/// (`ca.pem`, `tls.crt`, `tls.key`): the CA's path and the bank's files. For tests and tools that
/// start a bank over HTTPS; the demo keeps its CA's key to issue one certificate per bank.
pub fn write_ca_and_cert(
    dir: &Path,
    ca_name: &str,
    bank_name: &str,
) -> Result<(PathBuf, ServerTls), String> {
    let ca = make_ca(ca_name)?;
    let issued = make_bank_cert(ca_name, &ca.key_pem, bank_name)?;
    let ca_path = dir.join("ca.pem");
    let files = ServerTls {
        cert_chain: dir.join("tls.crt"),
        private_key: dir.join("tls.key"),
    };
    for (path, text) in [
        (&ca_path, &ca.cert_pem),
        (&files.cert_chain, &issued.cert_pem),
    ] {
        std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    crate::config::write_private(&files.private_key, &issued.key_pem)?;
    Ok((ca_path, files))
}

/// A certificate and its private key, PEM.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// The demo CA's parameters, the same each time: a bank's certificate is issued from these and
/// the CA's key as stored, without reading the CA certificate back.
fn ca_params(name: &str) -> Result<rcgen::CertificateParams, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose};
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(3650);
    Ok(params)
}

/// A fresh CA named `name` (ECDSA P-256, ten years), for a demo consortium.
pub fn make_ca(name: &str) -> Result<Issued, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let cert = ca_params(name)?
        .self_signed(&key)
        .map_err(|e| format!("cannot make the CA: {e}"))?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A server certificate for `name` (ECDSA P-256, two years), valid for 127.0.0.1 and
/// localhost, signed by the CA [`make_ca`] made as `ca_name` with the key `ca_key_pem`.
pub fn make_bank_cert(ca_name: &str, ca_key_pem: &str, name: &str) -> Result<Issued, String> {
    use rcgen::{
        CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose,
    };
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(|e| format!("the CA's key: {e}"))?;
    let issuer = Issuer::new(ca_params(ca_name)?, ca_key);
    let key = KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .map_err(|e| e.to_string())?;
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(730);
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|e| format!("cannot make {name}'s certificate: {e}"))?;
    Ok(Issued {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
