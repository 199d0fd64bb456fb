//! TLS for the checks that connect themselves (HTTP, gRPC): rustls with the platform's
//! roots and added ones, no session resumption, and the server certificate's expiry.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;

use crate::InvalidPem;

/// rustls as the checks set it up: the platform's roots and the added ones, the process's
/// crypto provider or aws-lc, ALPN `alpn`, and no session resumption: a resumed TLS
/// session shows no certificate, so a check would go on judging the certificate of its
/// first handshake for as long as the server resumed it, a renewed one or an expired one.
pub(crate) fn client_config(
    roots: &[CertificateDer<'static>],
    alpn: Vec<Vec<u8>>,
) -> Result<rustls::ClientConfig, String> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
        roots.iter().cloned(),
        provider.clone(),
    )
    .map_err(|e| format!("certificate verifier: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .dangerous() // rustls' name for "a verifier of one's own": the platform's
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = alpn;
    Ok(config)
}

/// The certificates of a PEM text, each checked to be one.
pub(crate) fn roots_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, InvalidPem> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let der = cert.map_err(|e| InvalidPem::Malformed(e.to_string()))?;
        x509_parser::parse_x509_certificate(&der)
            .map_err(|e| InvalidPem::Malformed(e.to_string()))?;
        roots.push(der);
    }
    if roots.is_empty() {
        return Err(InvalidPem::Empty);
    }
    Ok(roots)
}

/// The `notAfter` (Unix seconds) of the certificate a check last saw; clones start empty.
#[derive(Debug)]
pub(crate) struct SeenExpiry(std::sync::atomic::AtomicI64);

impl SeenExpiry {
    const NONE: i64 = i64::MIN;

    pub(crate) fn set(&self, not_after: i64) {
        // A certificate from before 1970 would read as none: `NONE` is not a real time.
        self.0.store(
            not_after.max(Self::NONE + 1),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// When the certificate expires, as a time.
    pub(crate) fn at(&self) -> Option<SystemTime> {
        let at = u64::try_from(self.get()?).ok()?;
        std::time::UNIX_EPOCH.checked_add(Duration::from_secs(at))
    }

    pub(crate) fn get(&self) -> Option<i64> {
        let v = self.0.load(std::sync::atomic::Ordering::Relaxed);
        (v != Self::NONE).then_some(v)
    }
}

impl Default for SeenExpiry {
    fn default() -> Self {
        Self(std::sync::atomic::AtomicI64::new(Self::NONE))
    }
}

impl Clone for SeenExpiry {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// The `notAfter` of the certificate `der`, Unix seconds.
pub(crate) fn cert_not_after(der: &[u8]) -> Result<i64, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("unreadable server certificate: {e}"))?;
    Ok(cert.validity().not_after.timestamp())
}

/// `Ok` when the leaf certificate `der` is valid for at least `window` more.
#[cfg(test)]
fn cert_valid_for(der: Option<&[u8]>, window: Duration) -> Result<(), String> {
    let der = der.ok_or("no TLS certificate to check (plain HTTP)")?;
    valid_for(cert_not_after(der), window)
}

/// `Ok` when a certificate whose `notAfter` is `not_after` (or that could not be read) is
/// valid for at least `window` more.
pub(crate) fn valid_for(not_after: Result<i64, String>, window: Duration) -> Result<(), String> {
    use std::time::{SystemTime, UNIX_EPOCH};
    let not_after = not_after?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let left = not_after.saturating_sub(now);
    let window_secs = i64::try_from(window.as_secs()).unwrap_or(i64::MAX);
    if left >= window_secs {
        return Ok(());
    }
    let at = u64::try_from(not_after).map_or(UNIX_EPOCH, |s| {
        UNIX_EPOCH
            .checked_add(Duration::from_secs(s))
            .unwrap_or(UNIX_EPOCH)
    });
    Err(format!(
        "certificate expires at {} (in {}), under the {} required",
        towerscope_core::rfc3339_millis(at),
        days_hours(left.max(0).unsigned_abs()),
        days_hours(window.as_secs()),
    ))
}

fn days_hours(secs: u64) -> String {
    format!("{}d {}h", secs / 86_400, secs % 86_400 / 3_600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_windows() {
        let day = 86_400;
        let cert = |days: i64| {
            let mut params =
                rcgen::CertificateParams::new(vec!["localhost".into()]).expect("test input");
            params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(days);
            let key = rcgen::KeyPair::generate().expect("test input");
            params.self_signed(&key).expect("test input").der().to_vec()
        };
        let fourteen = Duration::from_secs(14 * day);
        assert_eq!(cert_valid_for(Some(&cert(30)), fourteen), Ok(()));
        let err = cert_valid_for(Some(&cert(9)), fourteen).expect_err("an error");
        assert!(
            err.contains("(in 8d 23h)") || err.contains("(in 9d 0h)"),
            "{err}"
        );
        assert!(err.ends_with("under the 14d 0h required"), "{err}");
        let err = cert_valid_for(Some(&cert(-1)), fourteen).expect_err("an error");
        assert!(err.contains("(in 0d 0h)"), "{err}");
        assert_eq!(
            cert_valid_for(None, fourteen).expect_err("an error"),
            "no TLS certificate to check (plain HTTP)"
        );
        let err = cert_valid_for(Some(b"junk"), fourteen).expect_err("an error");
        assert!(err.starts_with("unreadable server certificate"), "{err}");
        // Extreme windows neither overflow nor panic.
        assert!(cert_valid_for(Some(&cert(30)), Duration::MAX).is_err());
        assert_eq!(cert_valid_for(Some(&cert(30)), Duration::ZERO), Ok(()));
    }
}
