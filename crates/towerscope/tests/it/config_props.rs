//! Property tests for configuration: any file text and any variable values give a config or
//! an error that names a key; never a panic.

use proptest::prelude::*;
use towerscope::Config;

const VALID: &str = "service_name = \"shop\"\nenvironment = \"production\"\n\
[metrics]\nnames = \"guide\"\nmax_series = 500\nexclude_paths = [\"/metrics\"]\n\
[tracing]\nendpoint = \"http://collector:4317\"\nsample_ratio = 0.5\n\
[alerts]\ninterval_secs = 30\n[rum]\npages = [\"/\", \"/p/{id}\"]\n";

const VARIABLES: [&str; 8] = [
    "TOWERSCOPE_METRICS_ENABLED",
    "TOWERSCOPE_METRICS_MAX_SERIES",
    "TOWERSCOPE_METRICS_EXCLUDE_PATHS",
    "TOWERSCOPE_TRACING_SAMPLE_RATIO",
    "TOWERSCOPE_ALERTS_INTERVAL_SECS",
    "TOWERSCOPE_REQUEST_ID_HEADER",
    "TOWERSCOPE_LOG_FORMAT",
    "TOWERSCOPE_OPS_TOKEN",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn any_file_text_is_a_config_or_a_named_error(text in "\\PC{0,300}") {
        if let Err(e) = Config::from_sources(Some(("f.toml", &text)), |_| None) {
            prop_assert!(!e.key().is_empty());
            prop_assert!(e.to_string().starts_with("f.toml: "), "{}", e);
        }
    }

    #[test]
    fn mutated_valid_files_are_configs_or_named_errors(at in 0usize..400, insert in "[\\[\\]=\"',.0-9a-z_\\n ]{0,8}") {
        let mut text = VALID.to_owned();
        let at = at.min(text.len());
        text.insert_str(at, &insert);
        if let Err(e) = Config::from_sources(Some(("f.toml", &text)), |_| None) {
            prop_assert!(!e.key().is_empty(), "{}", e);
        }
    }

    #[test]
    fn any_variable_value_is_a_config_or_names_the_variable(which in 0usize..VARIABLES.len(), value in "\\PC{0,40}") {
        let name = VARIABLES[which];
        match Config::from_sources(Some(("f.toml", VALID)), |v| (v == name).then(|| value.clone())) {
            Ok(_) => {}
            Err(e) => {
                prop_assert_eq!(e.key(), name, "{}", e);
                if name == "TOWERSCOPE_OPS_TOKEN" && !value.trim().is_empty() {
                    prop_assert!(!e.to_string().contains(&value), "the token is not repeated: {}", e);
                }
            }
        }
    }
}

/// `access_log.trusted_proxies` reaches RUM too: behind the balancer, each browser has its
/// own rate-limit bucket (20 beacons at once by default), not the balancer's one.
#[tokio::test]
async fn trusted_proxies_reach_the_rum_rate_limit() {
    use tower::ServiceExt as _;
    let text = "[access_log]\ntrusted_proxies = [\"10.0.0.0/8\"]\n[log]\nenabled = false\n";
    let config = Config::from_sources(Some(("t.toml", text)), |_| None).expect("config");
    let obs = towerscope::Observability::builder("shop")
        .configure(&config)
        .expect("configured")
        .build()
        .expect("built");
    let rum = obs.rum().expect("RUM on by default").clone();
    let beacon = |browser: &'static str| {
        let mut req = http::Request::post("/api/rum")
            .header("x-forwarded-for", browser)
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                br#"{"session":"s","page":"/","events":[]}"#,
            )))
            .expect("request");
        req.extensions_mut()
            .insert(towerscope_core::PeerAddr(([10, 0, 0, 1], 40000).into()));
        rum.ingest_service().oneshot(req)
    };
    for _ in 0..20 {
        assert_eq!(beacon("198.51.100.7").await.expect("ok").status(), 204);
    }
    assert_eq!(beacon("198.51.100.7").await.expect("ok").status(), 429);
    assert_eq!(
        beacon("203.0.113.9").await.expect("ok").status(),
        204,
        "another browser"
    );
}
