//! What the health tests share.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use towerscope_health::{CheckOptions, Health, check_fn};

/// A health with one check, `db`, that passes while the returned flag is set (it starts set).
pub fn toggled_db(options: CheckOptions) -> (Health, Arc<AtomicBool>) {
    let up = Arc::new(AtomicBool::new(true));
    let flag = up.clone();
    let health = Health::builder("1")
        .check(
            "db",
            check_fn(move || {
                let ok = flag.load(Ordering::SeqCst);
                async move { if ok { Ok(()) } else { Err("down") } }
            }),
            options,
        )
        .build();
    (health, up)
}

/// Certificates for TLS servers in tests: a CA, certificates it signs for 127.0.0.1, and a
/// server certificate a test can replace (a renewal).
#[cfg(feature = "tls")]
pub mod tls {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    /// A CA that signs certificates for 127.0.0.1.
    pub struct Ca {
        pub pem: String,
        issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    }

    impl Ca {
        pub fn new() -> Self {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let pem = ca.self_signed(&key).expect("ca").pem();
            Self {
                pem,
                issuer: rcgen::Issuer::new(ca, key),
            }
        }

        /// A certificate and its key that expire in `days` (in the past when negative),
        /// at a whole second.
        pub fn issue(&self, days: i64) -> (Vec<u8>, Vec<u8>, SystemTime) {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut params =
                rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("p");
            let not_after = (time::OffsetDateTime::now_utc() + time::Duration::days(days))
                .replace_nanosecond(0)
                .expect("whole second");
            params.not_after = not_after;
            let cert = params.signed_by(&key, &self.issuer).expect("signed");
            let at = UNIX_EPOCH
                + Duration::from_secs(
                    u64::try_from(not_after.unix_timestamp()).expect("after 1970"),
                );
            (cert.der().to_vec(), key.serialize_der(), at)
        }
    }

    /// A CA, and a certificate for 127.0.0.1 it signed that expires in `days`.
    pub fn pki(days: i64) -> (String, Vec<u8>, Vec<u8>) {
        let ca = Ca::new();
        let (cert, key, _) = ca.issue(days);
        (ca.pem, cert, key)
    }

    /// The certificate a TLS server shows, which a test can replace (a renewal).
    #[derive(Debug)]
    pub struct Shown(Mutex<Arc<rustls::sign::CertifiedKey>>);

    impl Shown {
        pub fn new(cert: Vec<u8>, key: Vec<u8>) -> Arc<Self> {
            Arc::new(Self(Mutex::new(certified(cert, key))))
        }

        pub fn replace(&self, cert: Vec<u8>, key: Vec<u8>) {
            *self.0.lock().expect("lock") = certified(cert, key);
        }
    }

    fn certified(cert: Vec<u8>, key: Vec<u8>) -> Arc<rustls::sign::CertifiedKey> {
        let key = rustls::pki_types::PrivateKeyDer::try_from(key).expect("key");
        let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).expect("signer");
        Arc::new(rustls::sign::CertifiedKey::new(vec![cert.into()], signer))
    }

    impl rustls::server::ResolvesServerCert for Shown {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(self.0.lock().expect("lock").clone())
        }
    }
}
