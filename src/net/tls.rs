//! TLS for `https://` targets (rustls with the ring provider): the system's
//! roots plus an optional CA file (the lab's test CA), or no verification at
//! all when the scenario says `insecure_tls` (like `--tls-verify=false`).

use super::classify::{self, Fault, FaultClass, Phase};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Builds the TLS connector for a run.
pub fn connector(
    ca_file: Option<&Path>,
    insecure: bool,
) -> Result<tokio_rustls::TlsConnector, String> {
    let provider = Arc::new(ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        // The system store may be missing or partly unreadable; the CA file can still suffice.
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = ca_file {
            let pem = read_ca_file(path)?;
            let mut added = 0;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("{}: bad PEM: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("{}: bad CA certificate: {e}", path.display()))?;
                added += 1;
            }
            if added == 0 {
                return Err(format!("{}: no certificate in the CA file", path.display()));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// Largest CA file read: a bundle of every public root is about 250 KiB.
pub const CA_FILE_LIMIT: u64 = 1 << 20;

/// The CA file's bytes, at most [`CA_FILE_LIMIT`] (`/dev/zero` or a huge file is an
/// error naming the file, not an allocation that never ends).
fn read_ca_file(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let cannot = |e: std::io::Error| format!("{}: cannot read CA file: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot)?;
    let mut pem = Vec::new();
    file.take(CA_FILE_LIMIT + 1)
        .read_to_end(&mut pem)
        .map_err(cannot)?;
    if pem.len() as u64 > CA_FILE_LIMIT {
        return Err(format!(
            "{}: CA file is larger than {} KiB; expected a PEM file of CA certificates",
            path.display(),
            CA_FILE_LIMIT >> 10
        ));
    }
    Ok(pem)
}

/// The server name to verify, from the URL's host.
pub fn server_name(host: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host} is not a valid TLS server name: {e}"))
}

/// The TLS handshake with `host:port` over a connected `stream`, within `left`
/// (what the connect timeout `budget` has not used yet). A reset or EOF
/// mid-handshake keeps its own fault class; anything else is a TLS fault.
pub async fn handshake<S>(
    connector: &tokio_rustls::TlsConnector,
    host: &str,
    port: u16,
    stream: S,
    left: Duration,
    budget: Duration,
) -> Result<tokio_rustls::client::TlsStream<S>, Fault>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let name = server_name(host).map_err(|e| Fault::new(FaultClass::Tls, Phase::Connect, e))?;
    match tokio::time::timeout(left, connector.connect(name, stream)).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => {
            let mut f = classify::from_io(
                &e,
                Phase::Connect,
                &format!("TLS handshake with {host}:{port}"),
            );
            if f.class == FaultClass::Other {
                f.class = FaultClass::Tls;
            }
            Err(f)
        }
        Err(_) => Err(Fault::new(
            FaultClass::Tls,
            Phase::Connect,
            format!("TLS handshake with {host}:{port} took longer than {budget:?}"),
        )),
    }
}

/// Verifies signatures (so the handshake is real) but trusts any certificate.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(path: &str) -> String {
        match connector(Some(Path::new(path)), false) {
            Ok(_) => panic!("{path} accepted"),
            Err(e) => e,
        }
    }

    /// `/dev/zero` as the CA file aborted the process on allocation on main.
    #[test]
    fn an_endless_ca_file_is_an_error_naming_it() {
        let e = refused("/dev/zero");
        assert!(e.contains("/dev/zero") && e.contains("larger than"), "{e}");
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_an_error_naming_it() {
        let e = refused("/nonexistent/ca.pem");
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
        let e = refused("/dev/null");
        assert!(e.contains("no certificate"), "{e}");
    }
}
