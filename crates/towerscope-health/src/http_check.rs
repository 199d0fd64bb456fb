//! [`HttpCheck`]: one HTTP(S) request, judged by status, body and certificate.

use std::fmt;
use std::sync::OnceLock;
#[cfg(feature = "tls")]
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};

use crate::check::{CheckFuture, HealthCheck};

/// The most of a response body a check reads, unless [`HttpCheck::max_body_bytes`] says
/// otherwise: 8 MiB.
///
/// ```
/// assert_eq!(towerscope_health::DEFAULT_MAX_BODY_BYTES, 8 << 20);
/// ```
pub const DEFAULT_MAX_BODY_BYTES: usize = 8 << 20;

/// The `User-Agent` a check sends unless given one with [`HttpCheck::header`], so the
/// server's logs can tell probes from users.
///
/// ```
/// assert!(towerscope_health::HTTP_CHECK_USER_AGENT.starts_with("towerscope-health/"));
/// ```
pub const HTTP_CHECK_USER_AGENT: &str = concat!("towerscope-health/", env!("CARGO_PKG_VERSION"));

/// Passes when one HTTP or HTTPS request (default `GET`) answers with the expected status
/// (default 200), its body arrives whole within [`DEFAULT_MAX_BODY_BYTES`], and, where
/// asked, the body contains a text and the server's certificate stays valid long enough.
/// A readiness check of a dependency, or a synthetic probe of a page or an API call (see
/// [`Synthetics`](crate::Synthetics)).
///
/// Its errors (shown by `/ready` and logged) name the URI without user information or
/// query string, either of which may hold a secret; header values are never shown.
/// Redirects are not followed unless [`follow_redirects`](Self::follow_redirects) says
/// so. `https://` needs the `tls` feature (on by default): rustls, with the system's root
/// certificates and any added by [`add_root_pem`](Self::add_root_pem).
///
/// ```
/// use std::time::Duration;
/// use towerscope_health::HttpCheck;
/// let check = HttpCheck::new("https://shop.example.com/products".parse().unwrap())
///     .expect_body_contains("Add to cart")
///     .min_cert_validity(Duration::from_secs(14 * 24 * 3600));
/// # let _ = check;
/// ```
#[derive(Clone)]
pub struct HttpCheck {
    uri: Uri,
    /// `uri` as errors and `Debug` show it: without user information or query.
    shown: String,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
    /// The statuses that count as up (never empty).
    expected: Vec<StatusCode>,
    body_contains: Option<String>,
    max_body: usize,
    redirects: usize,
    #[cfg(feature = "tls")]
    roots: Vec<rustls_pki_types::CertificateDer<'static>>,
    #[cfg(feature = "tls")]
    min_cert_validity: Option<Duration>,
    /// The `notAfter` (Unix seconds) of the certificate the last TLS connection showed.
    #[cfg(feature = "tls")]
    seen_expiry: crate::tls::SeenExpiry,
    /// Built at the first run from the settings above (a setter resets it).
    client: OnceLock<Result<reqwest::Client, String>>,
}

impl fmt::Debug for HttpCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("HttpCheck");
        d.field("method", &self.method)
            .field("uri", &self.shown)
            // Names only: a value may be a credential.
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("expected", &self.expected)
            .field("body_contains", &self.body_contains)
            .field("max_body", &self.max_body)
            .field("redirects", &self.redirects);
        #[cfg(feature = "tls")]
        d.field("min_cert_validity", &self.min_cert_validity);
        d.finish_non_exhaustive()
    }
}

/// A PEM text that holds no certificate, or a malformed one; from
/// [`HttpCheck::add_root_pem`].
///
/// ```
/// let err = towerscope_health::HttpCheck::new("https://db.internal/health".parse().unwrap())
///     .add_root_pem(b"not a certificate")
///     .unwrap_err();
/// assert_eq!(err.to_string(), "no certificate in the PEM text");
/// ```
#[cfg(feature = "tls")]
#[derive(Debug, thiserror::Error)]
pub enum InvalidPem {
    /// No `CERTIFICATE` section.
    #[error("no certificate in the PEM text")]
    Empty,
    /// A section that does not decode.
    #[error("malformed PEM text: {0}")]
    Malformed(String),
}

impl HttpCheck {
    /// A check of `uri`: `GET`, expecting 200.
    ///
    /// ```
    /// use towerscope_health::{CheckOptions, Health, Status};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let check = towerscope_health::HttpCheck::new("http://127.0.0.1:1/health".parse().unwrap());
    /// let health = Health::builder("1").check("search", check, CheckOptions::default()).build();
    /// assert_eq!(health.readiness().await.status, Status::Unhealthy); // nothing answers there
    /// # });
    /// ```
    pub fn new(uri: Uri) -> Self {
        Self {
            shown: towerscope_core::redacted_uri(&uri),
            uri,
            method: Method::GET,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            expected: vec![StatusCode::OK],
            body_contains: None,
            max_body: DEFAULT_MAX_BODY_BYTES,
            redirects: 0,
            #[cfg(feature = "tls")]
            roots: Vec::new(),
            #[cfg(feature = "tls")]
            min_cert_validity: None,
            #[cfg(feature = "tls")]
            seen_expiry: crate::tls::SeenExpiry::default(),
            client: OnceLock::new(),
        }
    }

    /// The status that counts as up.
    ///
    /// ```
    /// let check = towerscope_health::HttpCheck::new("http://127.0.0.1:9000/ping".parse().unwrap())
    ///     .expect_status(http::StatusCode::NO_CONTENT);
    /// # let _ = check;
    /// ```
    pub fn expect_status(mut self, status: StatusCode) -> Self {
        self.expected = vec![status];
        self
    }

    /// Several statuses that count as up (an empty list leaves the current ones).
    ///
    /// ```
    /// use http::StatusCode;
    /// let check = towerscope_health::HttpCheck::new("http://127.0.0.1:9000/jobs".parse().unwrap())
    ///     .expect_statuses([StatusCode::OK, StatusCode::ACCEPTED, StatusCode::NO_CONTENT]);
    /// # let _ = check;
    /// ```
    pub fn expect_statuses(mut self, statuses: impl IntoIterator<Item = StatusCode>) -> Self {
        let statuses: Vec<StatusCode> = statuses.into_iter().collect();
        if !statuses.is_empty() {
            self.expected = statuses;
        }
        self
    }

    /// The request method (default `GET`).
    ///
    /// ```
    /// let check = towerscope_health::HttpCheck::new("http://127.0.0.1:9000/search".parse().unwrap())
    ///     .method(http::Method::POST)
    ///     .body(r#"{"query": "probe"}"#)
    ///     .header(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    /// # let _ = check;
    /// ```
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Adds a request header (repeat for several values). A `User-Agent` given here
    /// replaces [`HTTP_CHECK_USER_AGENT`]. Values are never shown in errors or `Debug`.
    ///
    /// ```
    /// use http::{HeaderValue, header::AUTHORIZATION};
    /// let token = std::env::var("PROBE_TOKEN").unwrap_or_default();
    /// let mut check = towerscope_health::HttpCheck::new("http://127.0.0.1:9000/me".parse().unwrap());
    /// if let Ok(value) = HeaderValue::try_from(format!("Bearer {token}")) {
    ///     check = check.header(AUTHORIZATION, value);
    /// }
    /// assert!(!format!("{check:?}").contains("Bearer"));
    /// ```
    pub fn header(mut self, name: HeaderName, mut value: HeaderValue) -> Self {
        value.set_sensitive(true);
        self.headers.append(name, value);
        self
    }

    /// The request body (default empty).
    ///
    /// ```
    /// let check = towerscope_health::HttpCheck::new("http://127.0.0.1:9000/echo".parse().unwrap())
    ///     .method(http::Method::POST)
    ///     .body("ping")
    ///     .expect_body_contains("ping");
    /// # let _ = check;
    /// ```
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Also requires the response body to contain `text` (a page that answers 200 with an
    /// error message in it fails).
    ///
    /// ```
    /// let check = towerscope_health::HttpCheck::new("http://127.0.0.1:8080/products".parse().unwrap())
    ///     .expect_body_contains("Add to cart");
    /// # let _ = check;
    /// ```
    pub fn expect_body_contains(mut self, text: impl Into<String>) -> Self {
        self.body_contains = Some(text.into());
        self
    }

    /// The most of the body read (default [`DEFAULT_MAX_BODY_BYTES`]); a longer body fails
    /// the check, so a runaway response never fills memory.
    ///
    /// ```
    /// let check = towerscope_health::HttpCheck::new("http://127.0.0.1:8080/report".parse().unwrap())
    ///     .max_body_bytes(64 << 20);
    /// # let _ = check;
    /// ```
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body = max;
        self
    }

    /// Follows up to `max` redirects (default 0: a redirect is the answer, and counts as
    /// up only with [`expect_status`](Self::expect_status) of its status). More than `max`
    /// fails the check.
    ///
    /// ```
    /// let check = towerscope_health::HttpCheck::new("http://127.0.0.1:8080/".parse().unwrap())
    ///     .follow_redirects(5);
    /// # let _ = check;
    /// ```
    pub fn follow_redirects(mut self, max: usize) -> Self {
        self.redirects = max;
        self.client = OnceLock::new();
        self
    }

    /// Also trusts the certificates in `pem` (one or more `CERTIFICATE` sections) as roots,
    /// beside the system's: a service behind an internal CA.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let pem = rcgen::generate_simple_self_signed(vec!["db.internal".into()])?.cert.pem();
    /// let check = towerscope_health::HttpCheck::new("https://db.internal/health".parse()?)
    ///     .add_root_pem(pem.as_bytes())?;
    /// # let _ = check;
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "tls")]
    pub fn add_root_pem(mut self, pem: &[u8]) -> Result<Self, InvalidPem> {
        self.roots.extend(crate::tls::roots_from_pem(pem)?);
        self.client = OnceLock::new();
        Ok(self)
    }

    /// Also fails while the server's certificate expires within `window` (the classic
    /// "certificate expires in 14 days" page, before browsers start refusing it). A plain
    /// `http://` URI then fails: there is no certificate to check.
    ///
    /// ```
    /// use std::time::Duration;
    /// let check = towerscope_health::HttpCheck::new("https://shop.example.com/".parse().unwrap())
    ///     .min_cert_validity(Duration::from_secs(14 * 24 * 3600));
    /// # let _ = check;
    /// ```
    #[cfg(feature = "tls")]
    pub fn min_cert_validity(mut self, window: Duration) -> Self {
        self.min_cert_validity = Some(window);
        self.client = OnceLock::new();
        self
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        self.client
            .get_or_init(|| {
                let redirects = match self.redirects {
                    0 => reqwest::redirect::Policy::none(),
                    n => reqwest::redirect::Policy::limited(n),
                };
                let builder = reqwest::Client::builder()
                    .user_agent(HTTP_CHECK_USER_AGENT)
                    .redirect(redirects)
                    // A new connection each run, as a new visitor makes: a pooled one
                    // would show the certificate of its handshake for as long as the
                    // server keeps it open.
                    .pool_max_idle_per_host(0);
                #[cfg(feature = "tls")]
                let builder = builder
                    .tls_backend_preconfigured(crate::tls::client_config(
                        &self.roots,
                        vec![b"h2".to_vec(), b"http/1.1".to_vec()],
                    )?)
                    // The peer's certificate, for its expiry (absent over plain HTTP).
                    .tls_info(true);
                builder.build().map_err(error_chain)
            })
            .as_ref()
            .map_err(|e| format!("{} {}: client setup: {e}", self.method, self.shown))
    }

    async fn run(&self) -> Result<(), String> {
        let client = self.client()?;
        let fail = |what: String| format!("{} {}: {what}", self.method, self.shown);
        let mut request = client
            .request(self.method.clone(), self.uri.to_string())
            .headers(self.headers.clone());
        if !self.body.is_empty() {
            request = request.body(self.body.clone());
        }
        let mut response = request.send().await.map_err(|e| fail(error_chain(e)))?;
        // What the certificate says is known whatever the status: record it first.
        #[cfg(feature = "tls")]
        let not_after = match response
            .extensions()
            .get::<reqwest::tls::TlsInfo>()
            .and_then(|info| info.peer_certificate())
        {
            Some(der) => {
                let not_after = crate::tls::cert_not_after(der);
                if let Ok(secs) = not_after {
                    self.seen_expiry.set(secs);
                }
                Some(not_after)
            }
            None => None,
        };
        let status = response.status();
        if !self.expected.contains(&status) {
            let expected: Vec<String> = self
                .expected
                .iter()
                .map(|s| s.as_u16().to_string())
                .collect();
            return Err(fail(format!(
                "status {}, expected {}",
                status.as_u16(),
                expected.join(" or ")
            )));
        }
        #[cfg(feature = "tls")]
        if let Some(window) = self.min_cert_validity {
            let not_after = not_after
                .unwrap_or_else(|| Err("no TLS certificate to check (plain HTTP)".to_owned()));
            crate::tls::valid_for(not_after, window).map_err(fail)?;
        }
        // Read the whole body (bounded): the run times the transfer, and a body cut short
        // fails.
        let mut kept = Vec::new();
        let mut read = 0usize;
        while let Some(chunk) = response.chunk().await.map_err(|e| fail(error_chain(e)))? {
            read = read.saturating_add(chunk.len());
            if read > self.max_body {
                return Err(fail(format!("body over {} bytes", self.max_body)));
            }
            if self.body_contains.is_some() {
                kept.extend_from_slice(&chunk);
            }
        }
        if let Some(text) = &self.body_contains {
            if memchr::memmem::find(&kept, text.as_bytes()).is_none() {
                return Err(fail(format!("body does not contain {text:?}")));
            }
        }
        Ok(())
    }
}

impl HealthCheck for HttpCheck {
    fn check(&self) -> CheckFuture<'_> {
        Box::pin(self.run())
    }

    /// The `notAfter` of the leaf certificate the last HTTPS response came with (it stays
    /// while later runs fail to connect, so an expired certificate, which the TLS
    /// handshake refuses, still shows its expiry in the past).
    #[cfg(feature = "tls")]
    fn certificate_expiry(&self) -> Option<std::time::SystemTime> {
        self.seen_expiry.at()
    }
}

/// `e` and its sources, `: `-separated, without the URL (it may hold a secret; errors
/// name the redacted one).
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
