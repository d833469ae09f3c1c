//! The client side's TLS material: the operator's PEM files and the crypto provider.
//!
//! The same choices as the server's own set-up (forward-secret AEAD suites only), kept
//! here so that the suite stands on its own and can be pointed at any server.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate of a PEM file, in order; an error when there is none.
pub(crate) fn load_certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read certificates from {}", path.display()))?;
    if certs.is_empty() {
        bail!(
            "cannot read certificates from {}: no certificate found",
            path.display()
        );
    }
    Ok(certs)
}

/// The first private key of a PEM file.
pub(crate) fn load_private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("cannot read the private key from {}", path.display()))
}

/// aws-lc-rs with only forward-secret AEAD suites (all of TLS 1.3's, ECDHE with GCM or
/// ChaCha20 for 1.2): what an MSSanté server is expected to offer.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::aws_lc_rs::default_provider();
    p.cipher_suites.retain(|s| match s {
        rustls::SupportedCipherSuite::Tls13(_) => true,
        rustls::SupportedCipherSuite::Tls12(s) => {
            let name = format!("{:?}", s.common.suite);
            name.contains("ECDHE") && (name.contains("GCM") || name.contains("CHACHA20"))
        }
    });
    Arc::new(p)
}

/// The certificates of a CA bundle as trust anchors.
pub(crate) fn root_store(path: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    for cert in load_certificates(path)? {
        roots
            .add(cert)
            .with_context(|| format!("a certificate of {} is not a usable CA", path.display()))?;
    }
    Ok(roots)
}
