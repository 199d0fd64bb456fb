//! `HttpCheck` against real servers: method, headers, body, redirects, limits, HTTPS.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::{any, get};
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use towerscope_health::{HTTP_CHECK_USER_AGENT, HealthCheck, HttpCheck};

/// What the echo route saw last.
#[derive(Debug, Default, Clone)]
struct Seen {
    method: String,
    user_agent: String,
    authorization: String,
    body: String,
}

fn app(seen: Arc<Mutex<Seen>>) -> Router {
    Router::new()
        .route(
            "/echo",
            any(move |method: Method, headers: HeaderMap, body: Bytes| {
                let seen = seen.clone();
                async move {
                    let header = |name| {
                        headers
                            .get(name)
                            .and_then(|v: &HeaderValue| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    *seen.lock().expect("lock") = Seen {
                        method: method.to_string(),
                        user_agent: header(USER_AGENT),
                        authorization: header(AUTHORIZATION),
                        body: String::from_utf8_lossy(&body).into_owned(),
                    };
                    "<html>Add to cart</html>"
                }
            }),
        )
        .route(
            "/moved",
            get(|| async { (StatusCode::FOUND, [(LOCATION, "/echo")]) }),
        )
        .route(
            "/loop",
            get(|| async { (StatusCode::FOUND, [(LOCATION, "/loop")]) }),
        )
        .route(
            "/endless",
            get(|| async {
                let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                let stream = futures_util::stream::repeat_with(move || {
                    Ok::<_, std::convert::Infallible>(chunk.clone())
                });
                axum::body::Body::from_stream(stream)
            }),
        )
}

async fn serve(seen: Arc<Mutex<Seen>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app(seen)).await });
    addr
}

fn check(addr: SocketAddr, path: &str) -> HttpCheck {
    HttpCheck::new(format!("http://{addr}{path}").parse().expect("uri"))
}

#[tokio::test]
async fn sends_the_configured_request_and_names_itself() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let addr = serve(seen.clone()).await;

    assert_eq!(check(addr, "/echo").check().await, Ok(()));
    let got = seen.lock().expect("lock").clone();
    assert_eq!(got.method, "GET");
    assert_eq!(got.user_agent, HTTP_CHECK_USER_AGENT);

    let post = check(addr, "/echo")
        .method(Method::POST)
        .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
        .header(
            AUTHORIZATION,
            HeaderValue::from_static("Bearer probe-token"),
        )
        .header(USER_AGENT, HeaderValue::from_static("shop-probe/2"))
        .body(r#"{"sku":"TEST-1"}"#);
    assert!(!format!("{post:?}").contains("probe-token"), "{post:?}");
    assert_eq!(post.check().await, Ok(()));
    let got = seen.lock().expect("lock").clone();
    assert_eq!(got.method, "POST");
    assert_eq!(got.authorization, "Bearer probe-token");
    assert_eq!(got.user_agent, "shop-probe/2", "a given User-Agent wins");
    assert_eq!(got.body, r#"{"sku":"TEST-1"}"#);
}

#[tokio::test]
async fn the_body_must_contain_the_text() {
    let addr = serve(Arc::default()).await;
    let found = check(addr, "/echo").expect_body_contains("Add to cart");
    assert_eq!(found.check().await, Ok(()));
    let missing = check(addr, "/echo").expect_body_contains("Checkout");
    let err = missing.check().await.expect_err("the text is not there");
    assert_eq!(
        err,
        format!("GET http://{addr}/echo: body does not contain \"Checkout\"")
    );
}

#[tokio::test]
async fn an_endless_body_fails_at_the_limit() {
    let addr = serve(Arc::default()).await;
    for kept in [false, true] {
        let mut endless = check(addr, "/endless").max_body_bytes(1 << 20);
        if kept {
            endless = endless.expect_body_contains("never there");
        }
        let err = tokio::time::timeout(Duration::from_secs(30), endless.check())
            .await
            .expect("the read stops at the limit")
            .expect_err("over the limit");
        assert_eq!(
            err,
            format!("GET http://{addr}/endless: body over 1048576 bytes")
        );
    }
}

#[tokio::test]
async fn a_body_cut_short_fails() {
    // Promises 100 bytes, sends 10, hangs up.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0; 1024];
            let _ = tcp.read(&mut buf).await;
            let _ = tcp
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
                .await;
        }
    });
    let err = check(addr, "/").check().await.expect_err("cut short");
    assert!(
        err.starts_with(&format!("GET http://{addr}/: error decoding response body")),
        "{err}"
    );
}

#[tokio::test]
async fn redirects_are_answers_unless_followed() {
    let addr = serve(Arc::default()).await;
    let err = check(addr, "/moved").check().await.expect_err("302");
    assert_eq!(
        err,
        format!("GET http://{addr}/moved: status 302, expected 200")
    );
    let moved = check(addr, "/moved").expect_status(StatusCode::FOUND);
    assert_eq!(moved.check().await, Ok(()));
    let either = check(addr, "/moved").expect_statuses([StatusCode::OK, StatusCode::FOUND]);
    assert_eq!(either.check().await, Ok(()));
    let neither = check(addr, "/moved").expect_statuses([StatusCode::OK, StatusCode::NO_CONTENT]);
    assert_eq!(
        neither.check().await,
        Err(format!(
            "GET http://{addr}/moved: status 302, expected 200 or 204"
        ))
    );
    let followed = check(addr, "/moved").follow_redirects(1);
    assert_eq!(followed.check().await, Ok(()));
    let looping = check(addr, "/loop").follow_redirects(3);
    let err = looping.check().await.expect_err("a redirect loop");
    assert!(err.contains("too many redirects"), "{err}");
}

#[tokio::test]
async fn a_bad_uri_is_a_clear_failure() {
    let relative = HttpCheck::new("/health".parse().expect("uri"));
    let err = relative.check().await.expect_err("no scheme or host");
    assert!(err.starts_with("GET /health: builder error"), "{err}");
    let ftp = HttpCheck::new("ftp://127.0.0.1/health".parse().expect("uri"));
    let err = ftp.check().await.expect_err("not HTTP");
    assert!(err.starts_with("GET ftp://127.0.0.1/health: "), "{err}");
}

mod https {
    use super::*;

    use crate::common::tls::{Ca, Shown, pki};

    async fn serve_tls(cert: Vec<u8>, key: Vec<u8>) -> SocketAddr {
        serve_shown(Shown::new(cert, key)).await
    }

    /// Serves `app` over TLS with the certificate `shown` holds at each handshake (and
    /// keeps connections open, as servers do).
    async fn serve_shown(shown: Arc<Shown>) -> SocketAddr {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_cert_resolver(shown);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = app(Arc::default());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(
                            hyper_util::rt::TokioIo::new(tls),
                            hyper_util::service::TowerToHyperService::new(app),
                        )
                        .await;
                });
            }
        });
        addr
    }

    fn check(addr: SocketAddr) -> HttpCheck {
        HttpCheck::new(format!("https://{addr}/echo").parse().expect("uri"))
    }

    #[tokio::test]
    async fn trusts_the_system_roots_and_the_added_ones() {
        let (ca, cert, key) = pki(90);
        let addr = serve_tls(cert, key).await;
        let err = check(addr).check().await.expect_err("an unknown CA");
        assert!(err.contains("certificate"), "{err}");
        let trusted = check(addr)
            .add_root_pem(ca.as_bytes())
            .expect("a CA certificate")
            .expect_body_contains("Add to cart");
        assert_eq!(trusted.check().await, Ok(()));
    }

    #[tokio::test]
    async fn fails_while_the_certificate_expires_within_the_window() {
        let fortnight = Duration::from_secs(14 * 24 * 3600);
        let (ca, cert, key) = pki(90);
        let addr = serve_tls(cert, key).await;
        let fine = check(addr)
            .add_root_pem(ca.as_bytes())
            .expect("pem")
            .min_cert_validity(fortnight);
        assert_eq!(fine.check().await, Ok(()));

        let (ca, cert, key) = pki(7);
        let addr = serve_tls(cert, key).await;
        let soon = check(addr)
            .add_root_pem(ca.as_bytes())
            .expect("pem")
            .min_cert_validity(fortnight);
        let err = soon.check().await.expect_err("expires in a week");
        assert!(
            err.starts_with(&format!("GET https://{addr}/echo: certificate expires at ")),
            "{err}"
        );
        assert!(err.ends_with("under the 14d 0h required"), "{err}");
    }

    /// The value of the sample line that starts with `prefix`.
    fn sample(registry: &prometheus_client::registry::Registry, prefix: &str) -> Option<f64> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, registry).expect("encode");
        text.lines()
            .find_map(|l| l.strip_prefix(prefix)?.trim().parse().ok())
    }

    #[tokio::test]
    async fn the_certificate_expiry_is_exported_and_follows_a_renewal() {
        use towerscope_health::Synthetics;
        let ca = Ca::new();
        let (cert, key, in_a_week) = ca.issue(7);
        let shown = Shown::new(cert, key);
        let addr = serve_shown(shown.clone()).await;
        let plain = serve(Arc::default()).await;
        let trusted = || check(addr).add_root_pem(ca.pem.as_bytes()).expect("pem");
        let before = trusted();
        assert_eq!(before.certificate_expiry(), None, "nothing seen yet");

        let mut registry = prometheus_client::registry::Registry::default();
        let probes = Synthetics::builder()
            .probe("shop", trusted())
            // A wrong status fails the probe, but the certificate was seen all the same.
            .probe("teapot", trusted().expect_status(StatusCode::IM_A_TEAPOT))
            .probe("plain", super::check(plain, "/echo"))
            .every(Duration::from_secs(3600))
            .first_round_after(Duration::from_secs(3600))
            .metrics(&mut registry)
            .spawn()
            .expect("valid names");
        let gauge = |probe: &str| {
            sample(
                &registry,
                &format!("synthetic_probe_tls_cert_expiry_timestamp_seconds{{probe=\"{probe}\"}}"),
            )
        };
        let unix = |at: SystemTime| at.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();

        let results = probes.run_now().await;
        assert!(results["shop"].success, "{:?}", results["shop"]);
        assert_eq!(results["shop"].cert_expiry, Some(in_a_week));
        assert!(!results["teapot"].success);
        assert_eq!(results["teapot"].cert_expiry, Some(in_a_week));
        assert_eq!(results["plain"].cert_expiry, None);
        assert_eq!(gauge("shop"), Some(unix(in_a_week) as f64));
        assert_eq!(gauge("teapot"), Some(unix(in_a_week) as f64));
        assert_eq!(gauge("plain"), None, "no certificate, no series");

        // Renewed: the next run sees the new certificate.
        let (cert, key, in_90_days) = ca.issue(90);
        shown.replace(cert, key);
        let results = probes.run_now().await;
        assert_eq!(results["shop"].cert_expiry, Some(in_90_days));
        assert_eq!(gauge("shop"), Some(unix(in_90_days) as f64));

        // Expired: the handshake is refused, and the last certificate seen stays.
        let (cert, key, _) = ca.issue(-1);
        shown.replace(cert, key);
        let results = probes.run_now().await;
        let error = results["shop"].error.as_deref().unwrap_or_default();
        assert!(error.contains("expired"), "{error}");
        assert_eq!(results["shop"].cert_expiry, Some(in_90_days));
        assert_eq!(gauge("shop"), Some(unix(in_90_days) as f64));
    }

    #[tokio::test]
    async fn a_readiness_check_over_tls_exports_its_certificate_expiry() {
        use towerscope_health::{CheckOptions, Health};
        let ca = Ca::new();
        let (cert, key, expires) = ca.issue(30);
        let addr = serve_tls(cert, key).await;
        let plain = serve(Arc::default()).await;
        let mut registry = prometheus_client::registry::Registry::default();
        let health = Health::builder("1")
            .check(
                "payments",
                check(addr).add_root_pem(ca.pem.as_bytes()).expect("pem"),
                CheckOptions::default(),
            )
            .check(
                "search",
                super::check(plain, "/echo"),
                CheckOptions::default(),
            )
            .metrics(&mut registry)
            .build();
        health.readiness().await;
        let at = expires
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let gauge = |check: &str| {
            sample(
                &registry,
                &format!("health_check_tls_cert_expiry_timestamp_seconds{{check=\"{check}\"}}"),
            )
        };
        assert_eq!(gauge("payments"), Some(at as f64));
        assert_eq!(gauge("search"), None, "plain HTTP: no series");
    }

    #[tokio::test]
    async fn a_certificate_window_on_plain_http_fails() {
        let addr = serve(Arc::default()).await;
        let plain = super::check(addr, "/echo").min_cert_validity(Duration::from_secs(1));
        let err = plain.check().await.expect_err("nothing to check");
        assert_eq!(
            err,
            format!("GET http://{addr}/echo: no TLS certificate to check (plain HTTP)")
        );
    }

    #[test]
    fn a_pem_without_a_certificate_is_refused() {
        let check = || HttpCheck::new("https://db.internal/".parse().expect("uri"));
        assert_eq!(
            check().add_root_pem(b"").expect_err("refused").to_string(),
            "no certificate in the PEM text"
        );
        let broken = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let err = check()
            .add_root_pem(broken)
            .expect_err("refused")
            .to_string();
        assert!(err.starts_with("malformed PEM text"), "{err}");
    }
}
