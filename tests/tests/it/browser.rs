//! Real headless Chromium against the demo: the shop page's beacon reaches /metrics, and
//! the dashboard shows a number on every card, points on its charts, the synthetic probes,
//! and an alert message and a probe error with markup as text. A screenshot of the dashboard is written to tests/artifacts/.

use std::time::Duration;

use fantoccini::{ClientBuilder, Locator};
use towerscope_alert::{Condition, Rule, Severity, Signal};
use towerscope_demo::{Config, Demo};
use towerscope_tests::{
    Component, eventually, free_port, require_program, serve_demo, wait_for_port,
};

const INJECTED: &str =
    "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script> in flight: {value}";
const INJECTED_PROBE: &str = "<img src=x onerror=\"window.__pwned=3\"> from payments";

/// The sum of the samples on lines starting with `prefix` (one family, some labels fixed).
fn count(text: &str, prefix: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Makes clicks on the shop's `#user` button take over 60 ms (a busy handler).
async fn slow_clicks_on_user(client: &fantoccini::Client) {
    client
        .execute(
            "document.querySelector('#user').addEventListener('click', function () { var t = performance.now(); while (performance.now() - t < 60) {} });",
            vec![],
        )
        .await
        .expect("script");
}

async fn start_demo() -> (std::net::SocketAddr, Demo) {
    serve_demo(Config {
        extra_rules: vec![
            Rule::new("InjectedMarkup", Signal::InFlight, Condition::Ge, 0.0)
                .severity(Severity::High)
                .message(INJECTED),
        ],
        alert_interval: Duration::from_millis(500),
        ..Config::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shop_reports_and_the_dashboard_shows_it() {
    let (Some(_chromium), Some(chromedriver)) =
        (require_program("chromium"), require_program("chromedriver"))
    else {
        return;
    };
    // Two TLS backends meet in this test binary: pick one (WebDriver is plain HTTP anyway).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (addr, demo) = start_demo().await;
    // The demo's probes, one whose error is markup (the probe card shows it as text), and
    // one over TLS whose certificate expires in five days and a few hours.
    let synthetics = towerscope_demo::synthetic_probes(addr)
        .probe(
            "payments",
            towerscope_health::check_fn(|| async { Err::<(), _>(INJECTED_PROBE) }),
        )
        .probe(
            "storefront",
            ExpiringCertificate(
                std::time::SystemTime::now() + Duration::from_secs(5 * 86_400 + 3 * 3600),
            ),
        )
        .spawn()
        .expect("probes");
    demo.observability()
        .dashboard()
        .expect("the demo's dashboard")
        .show_synthetics(&synthetics);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut driver = Component::start(
        &chromedriver,
        &[format!("--port={port}"), "--allowed-ips=127.0.0.1".into()],
        dir.path().join("chromedriver.log"),
    );
    assert!(
        wait_for_port(port, Duration::from_secs(20)).await,
        "chromedriver did not start:\n{}",
        driver.output()
    );

    let profile = dir.path().join("profile");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1100",
                format!("--user-data-dir={}", profile.display()),
            ]
        }),
    );
    let client = ClientBuilder::rustls()
        .expect("tls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .unwrap_or_else(|e| panic!("cannot start Chromium: {e}\n{}", driver.output()));

    // The shop: API calls, a click, a JavaScript error.
    let base = format!("http://{addr}");
    client.goto(&format!("{base}/")).await.expect("shop page");
    // A slow click handler: the interaction lasts over 50 ms, so the event timing API
    // reports it (it leaves out interactions under 16 ms, and a fast click's report is up
    // to the browser: the first view's INP was missing in one CI run).
    slow_clicks_on_user(&client).await;
    for id in ["#user", "#order", "#fail", "#bug"] {
        client
            .find(Locator::Css(id))
            .await
            .expect(id)
            .click()
            .await
            .expect("click");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // The shop runs under a strict policy (scripts and styles from its own origin, none
    // inline): its files apply, the clicks above reached the API through them (the RUM
    // metrics below), and a script put into the page runs not.
    let shop = client
        .execute(
            "var s = document.createElement('script');\
             s.textContent = 'window.__inline = 1;';\
             document.body.appendChild(s);\
             return [getComputedStyle(document.getElementById('out')).backgroundColor,\
                     document.getElementById('out').textContent, typeof window.__inline];",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        shop,
        serde_json::json!([
            "rgb(240, 243, 246)",
            "a JavaScript error was thrown",
            "undefined"
        ]),
        "the shop's style applies, its script ran, an inline script is blocked"
    );
    // A mark in the page's script state: it survives only a back/forward cache restore.
    client
        .execute("window.__leftOnce = true;", vec![])
        .await
        .expect("script");
    // Leaving the page hides it: the collector sends its last beacon.
    client
        .goto(&format!("{base}/dashboard"))
        .await
        .expect("dashboard");

    let metrics_text = || {
        let demo = demo.clone();
        async move {
            demo.metrics()
                .encode(towerscope_metrics::Format::Prometheus)
        }
    };
    let rum = eventually(Duration::from_secs(20), || async {
        let text = metrics_text().await;
        (text.contains("rum_js_errors_total{page=\"/\",browser=\"chrome\"} 1")
            && text.contains("rum_api_request_duration_seconds_count{endpoint=\"/orders\",status_class=\"2xx\"} 1")
            && text.contains("rum_api_request_duration_seconds_count{endpoint=\"/error\",status_class=\"5xx\"} 1")
            && text.contains("rum_clicks_total{page=\"/\"}")
            && text.contains("rum_ttfb_seconds_count{page=\"/\"")
            // The last beacon, sent when the page is hidden.
            && count(&text, "rum_inp_seconds_count{page=\"/\"") > 0
            && count(&text, "rum_cls_count{page=\"/\"") > 0)
            .then_some(text)
    })
    .await;
    let text = metrics_text().await;
    assert!(
        rum.is_some(),
        "the beacon's data is not in /metrics:\n{}",
        text.lines()
            .filter(|l| l.starts_with("rum_"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        text.contains("rum_lcp_seconds_count{page=\"/\""),
        "LCP after the first click"
    );
    assert!(text.contains("rum_fcp_seconds_count{page=\"/\""));
    assert_eq!(
        count(&text, "rum_inp_seconds_count{page=\"/\""),
        1,
        "INP of the first view"
    );
    assert_eq!(
        count(&text, "rum_cls_count{page=\"/\""),
        1,
        "CLS of the first view"
    );

    // Back to the shop: restored from the back/forward cache (its script state survives), a
    // new page view that reports its own FCP and LCP (its first frame) and its INP and CLS
    // when hidden again.
    client.back().await.expect("back to the shop");
    let restored = client
        .execute("return window.__leftOnce === true;", vec![])
        .await
        .expect("script");
    assert_eq!(
        restored,
        serde_json::json!(true),
        "the shop page came back from the back/forward cache, not reloaded"
    );
    // The handler added before survives in the restored page; this one adds to it.
    slow_clicks_on_user(&client).await;
    client
        .find(Locator::Css("#user"))
        .await
        .expect("#user")
        .click()
        .await
        .expect("click");
    tokio::time::sleep(Duration::from_millis(300)).await;
    client
        .goto(&format!("{base}/dashboard"))
        .await
        .expect("dashboard again");
    let second = eventually(Duration::from_secs(20), || async {
        let text = metrics_text().await;
        (count(&text, "rum_inp_seconds_count{page=\"/\"") == 2
            && count(&text, "rum_cls_count{page=\"/\"") == 2
            && count(&text, "rum_lcp_seconds_count{page=\"/\"") == 2
            && count(&text, "rum_fcp_seconds_count{page=\"/\"") == 2)
            .then_some(())
    })
    .await;
    let text = metrics_text().await;
    assert!(
        second.is_some(),
        "the restored view's INP, CLS, LCP and FCP:\n{}",
        text.lines()
            .filter(|l| ["rum_inp", "rum_cls", "rum_lcp", "rum_fcp"]
                .iter()
                .any(|p| l.starts_with(p) && l.contains("_count")))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // The dashboard: every card a number, charts with points, markup shown as text.
    let filled = eventually(Duration::from_secs(30), || {
        let client = client.clone();
        async move {
            let values = client.find_all(Locator::Css("[data-field]")).await.ok()?;
            let mut texts = Vec::new();
            for v in values {
                texts.push(v.text().await.ok()?);
            }
            let paths = client.find_all(Locator::Css("svg path")).await.ok()?;
            let mut with_points = 0;
            for p in &paths {
                if p.attr("d").await.ok()??.contains('L') {
                    with_points += 1;
                }
            }
            (texts.len() == 9
                && texts.iter().all(|t| t != "–" && !t.is_empty())
                && with_points >= 3)
                .then_some(texts)
        }
    })
    .await;
    let shot = client.screenshot().await.expect("screenshot");
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifacts dir");
    std::fs::write(artifacts.join("dashboard.png"), &shot).expect("write screenshot");
    let texts = filled.unwrap_or_else(|| panic!("some card has no number or a chart no points (screenshot in tests/artifacts/dashboard.png)"));
    assert_eq!(texts.len(), 9);

    let alert = eventually(Duration::from_secs(20), || {
        let client = client.clone();
        async move {
            let items = client.find_all(Locator::Css("#alert-list li")).await.ok()?;
            for li in items {
                let t = li.text().await.ok()?;
                if t.contains("InjectedMarkup") {
                    return Some(t);
                }
            }
            None
        }
    })
    .await
    .expect("the alert is listed");
    assert!(
        alert.contains("<script>window.__pwned=2</script>"),
        "shown as text: {alert}"
    );
    let probes = eventually(Duration::from_secs(20), || {
        let client = client.clone();
        async move {
            let list = client.find(Locator::Css("#probe-list")).await.ok()?;
            let text = list.text().await.ok()?;
            let all = [
                "orders",
                "user",
                "payments",
                INJECTED_PROBE,
                "storefront",
                "certificate expires in 5 d",
            ];
            all.iter().all(|t| text.contains(t)).then_some(text)
        }
    })
    .await
    .expect("the probe card lists the demo's probes and the failing one");
    assert!(
        probes.contains("passing") && probes.contains("failing"),
        "{probes}"
    );
    // Under the 7-day rule's threshold: marked like a failing check.
    let marked = client
        .execute(
            "var s = Array.from(document.querySelectorAll('#probe-list span'))\
               .find(function (e) { return e.textContent.indexOf('certificate') === 0; });\
             return s ? s.className : null;",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(marked, serde_json::json!("pill unhealthy"));
    // The business card: the demo's numbers from its own metrics. The shop page placed
    // one order of 19.99 $ with its one `POST /orders`.
    let business = eventually(Duration::from_secs(20), || {
        let client = client.clone();
        async move {
            let card = client.find(Locator::Css("#business-stats")).await.ok()?;
            let text = card.text().await.ok()?;
            (text.contains("Average order\n19.99 $") && text.contains("Checkout conversion\n100%"))
                .then_some(text)
        }
    })
    .await;
    let business_text = match &business {
        Some(text) => text.clone(),
        None => client
            .find(Locator::Css("#business-stats"))
            .await
            .expect("business card")
            .text()
            .await
            .expect("text"),
    };
    assert!(business.is_some(), "the business card: {business_text}");
    for label in ["Orders / min", "Revenue / min", "Registrations / hour"] {
        assert!(business_text.contains(label), "{business_text}");
    }
    let pwned = client
        .execute("return typeof window.__pwned;", vec![])
        .await
        .expect("script");
    assert_eq!(
        pwned,
        serde_json::json!("undefined"),
        "no injected code ran"
    );
    // The page's policy (its script and style allowed by hash, nothing else inline): its
    // own style applies, and a script put into the page runs not.
    let styled = client
        .execute(
            "return [getComputedStyle(document.body).backgroundColor,\
                     getComputedStyle(document.querySelector('.legend .p95')).backgroundColor];",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        styled,
        serde_json::json!(["rgb(15, 20, 25)", "rgb(255, 159, 67)"]),
        "the page's own style applies"
    );
    let injected = client
        .execute(
            "var s = document.createElement('script');\
             s.textContent = 'window.__inline = 1;';\
             document.body.appendChild(s);\
             return typeof window.__inline;",
            vec![],
        )
        .await
        .expect("script");
    assert_eq!(
        injected,
        serde_json::json!("undefined"),
        "an inline script put into the page is blocked"
    );
    let vitals = client
        .find(Locator::Css("#vitals"))
        .await
        .expect("vitals")
        .text()
        .await
        .expect("text");
    assert!(
        vitals.contains("TTFB"),
        "Core Web Vitals table filled: {vitals}"
    );

    // What a beacon carries: paths, never a page's query or fragment (a reset token, an
    // OAuth access token) nor an API call's query (a key). The beacons are caught in the
    // page as the browser would send them.
    client
        .goto(&format!("{base}/?reset=s3cret#access_token=t0ken"))
        .await
        .expect("the shop, its address holding secrets");
    let sent = client
        .execute_async(
            "var done = arguments[arguments.length - 1];\
             var bodies = [];\
             navigator.sendBeacon = function (url, blob) {\
               blob.text().then(function (t) { bodies.push(t); });\
               return true;\
             };\
             document.getElementById('bug').click();\
             fetch('/users/1?api_key=k3y').then(function () {\
               setTimeout(function () {\
                 window.__towerscopeRum.flush();\
                 setTimeout(function () { done(bodies.join('\\n')); }, 300);\
               }, 100);\
             });",
            vec![],
        )
        .await
        .expect("script");
    let sent = sent.as_str().expect("the beacons' bodies").to_owned();
    assert!(sent.contains(&format!(r#""page":"{base}/""#)), "{sent}");
    assert!(sent.contains(r#""url":"/users/1""#), "{sent}");
    // The shop's script threw; its address is the script's, without a query.
    assert!(
        sent.contains(&format!(r#""source":"{base}/shop.js""#)),
        "{sent}"
    );
    for secret in ["s3cret", "t0ken", "k3y"] {
        assert!(!sent.contains(secret), "{secret} sent: {sent}");
    }

    client.close().await.expect("close");
    assert!(driver.running());
}

/// A probe over TLS whose certificate expires at a known time.
struct ExpiringCertificate(std::time::SystemTime);

impl towerscope_health::HealthCheck for ExpiringCertificate {
    fn check(&self) -> towerscope_health::CheckFuture<'_> {
        Box::pin(async { Ok(()) })
    }

    fn certificate_expiry(&self) -> Option<std::time::SystemTime> {
        Some(self.0)
    }
}
