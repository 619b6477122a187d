//! TLS for the PostgreSQL connection: rustls with the ring provider.
//!
//! The server certificate is always verified when TLS is used: against `ca_file` when given,
//! else against the system roots. `verify-ca` skips only the host-name check; every other
//! TLS mode checks chain and name. Client certificates come from `cert_file`/`key_file`.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::config::{PostgresConfig, SslMode};
use crate::error::StoreError;

/// The rustls client configuration for `cfg`, or `None` when TLS is disabled.
pub(crate) fn client_config(cfg: &PostgresConfig) -> Result<Option<ClientConfig>, StoreError> {
    if cfg.sslmode == SslMode::Disable {
        return Ok(None);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(match &cfg.ca_file {
        Some(path) => roots_from_file(path)?,
        None => system_roots()?,
    });
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| StoreError::config("ipam.store.ca_file", format!("unusable: {e}")))?;
    let verifier: Arc<dyn ServerCertVerifier> = if cfg.sslmode == SslMode::VerifyCa {
        Arc::new(ChainOnly(webpki))
    } else {
        webpki
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Internal {
            reason: format!("TLS setup: {e}"),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (&cfg.cert_file, &cfg.key_file) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(
                certs_from_file(cert, "ipam.store.cert_file")?,
                key_from_file(key)?,
            )
            .map_err(|e| {
                StoreError::config(
                    "ipam.store.key_file",
                    format!("does not match cert_file {}: {e}", cert.display()),
                )
            })?,
        _ => builder.with_no_client_auth(),
    };
    Ok(Some(config))
}

fn open(path: &Path, field: &str) -> Result<File, StoreError> {
    File::open(path)
        .map_err(|e| StoreError::config(field, format!("cannot read {}: {e}", path.display())))
}

fn certs_from_file(path: &Path, field: &str) -> Result<Vec<CertificateDer<'static>>, StoreError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_reader_iter(open(path, field)?)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            StoreError::config(field, format!("{} is not valid PEM: {e}", path.display()))
        })?;
    if certs.is_empty() {
        return Err(StoreError::config(
            field,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(certs)
}

fn roots_from_file(path: &Path) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    for cert in certs_from_file(path, "ipam.store.ca_file")? {
        roots.add(cert).map_err(|e| {
            StoreError::config(
                "ipam.store.ca_file",
                format!("{} holds an unusable certificate: {e}", path.display()),
            )
        })?;
    }
    Ok(roots)
}

fn system_roots() -> Result<RootCertStore, StoreError> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        return Err(StoreError::config(
            "ipam.store.ca_file",
            format!(
                "is needed: TLS is on and no system CA certificates could be loaded ({})",
                errors.join("; ")
            ),
        ));
    }
    Ok(roots)
}

fn key_from_file(path: &Path) -> Result<PrivateKeyDer<'static>, StoreError> {
    let field = "ipam.store.key_file";
    // The message names the file only: never the key material.
    PrivateKeyDer::from_pem_reader(open(path, field)?).map_err(|e| match e {
        pem::Error::NoItemsFound => StoreError::config(
            field,
            format!("{} holds no PEM private key", path.display()),
        ),
        e => StoreError::config(field, format!("{} is not valid PEM: {e}", path.display())),
    })
}

/// `verify-ca`: the chain must lead to a trusted root; the name in it is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            // webpki checks the name only after the chain, so this error means a valid chain.
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName
                | rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn cfg(mode: SslMode) -> PostgresConfig {
        let mut cfg = PostgresConfig::new("db.example");
        cfg.sslmode = mode;
        cfg
    }

    fn field_of(err: StoreError) -> String {
        match err {
            StoreError::Config { field, .. } => field,
            other => panic!("expected a Config error, got {other:?}"),
        }
    }

    #[test]
    fn disabled_means_no_tls() {
        assert!(client_config(&cfg(SslMode::Disable)).unwrap().is_none());
    }

    #[test]
    fn missing_or_empty_ca_file_is_a_config_error() {
        let mut c = cfg(SslMode::VerifyFull);
        c.ca_file = Some("/nonexistent/ca.pem".into());
        let err = client_config(&c).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
        assert_eq!(field_of(err), "ipam.store.ca_file");

        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"not a certificate\n").unwrap();
        c.ca_file = Some(file.path().to_path_buf());
        let err = client_config(&c).unwrap_err();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn key_file_errors_never_show_key_material() {
        let mut key = tempfile::NamedTempFile::new().unwrap();
        key.write_all(b"SECRET-KEY-BYTES\n").unwrap();
        let err = key_from_file(key.path()).unwrap_err();
        assert!(!err.to_string().contains("SECRET-KEY-BYTES"), "{err}");
        assert_eq!(field_of(err), "ipam.store.key_file");
    }
}
