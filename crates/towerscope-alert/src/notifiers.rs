//! Receivers: Slack, PagerDuty Events API v2, a generic JSON webhook (optionally signed),
//! Alertmanager API v2, and email over SMTP.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use hmac::{KeyInit, Mac};
use serde_json::{Value, json};

use crate::delivery::{DeliveryError, Notifier, SendFuture};
use crate::eval::{Alert, Notification};
use crate::rule::Severity;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("towerscope-alert/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

fn rfc3339(t: SystemTime) -> String {
    towerscope_core::rfc3339_millis(t)
}

/// Classifies an HTTP answer. `ok` says which statuses mean delivered.
fn classify(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    ok: fn(u16) -> bool,
) -> Result<(), DeliveryError> {
    let code = status.as_u16();
    if ok(code) {
        return Ok(());
    }
    if code == 429 || code >= 500 || code == 408 {
        let after = headers
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.trim()
                    .parse::<u64>()
                    .ok()
                    .map(Duration::from_secs)
                    .or_else(|| {
                        httpdate::parse_http_date(v)
                            .ok()
                            .and_then(|t| t.duration_since(SystemTime::now()).ok())
                    })
            });
        return Err(DeliveryError::Retry {
            reason: format!("HTTP {code}"),
            after,
        });
    }
    Err(DeliveryError::Permanent(format!("HTTP {code}")))
}

async fn post_json(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    extra: &[(String, String)],
    ok: fn(u16) -> bool,
) -> Result<(), DeliveryError> {
    let bytes = serde_json::to_vec(body).map_err(|e| DeliveryError::Permanent(e.to_string()))?;
    post_bytes(client, url, bytes, extra, ok).await
}

async fn post_bytes(
    client: &reqwest::Client,
    url: &str,
    bytes: Vec<u8>,
    extra: &[(String, String)],
    ok: fn(u16) -> bool,
) -> Result<(), DeliveryError> {
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(bytes);
    for (k, v) in extra {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| DeliveryError::retry(format!("request failed: {}", without_url(&e))))?;
    classify(resp.status(), resp.headers(), ok)
}

/// reqwest errors print the URL, which for Slack and webhooks is a secret.
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "connection failed"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_request() {
        "request error"
    } else {
        "error"
    };
    kind.to_owned()
}

fn is_2xx(c: u16) -> bool {
    (200..300).contains(&c)
}

fn status_word(n: &Notification) -> &'static str {
    if n.is_resolved() {
        "resolved"
    } else {
        "firing"
    }
}

/// Slack incoming webhook. A 410 (archived channel) or 404 (webhook removed) is permanent:
/// retrying cannot help; 429 and 5xx are retried.
///
/// ```
/// let slack = towerscope_alert::SlackNotifier::new("https://hooks.slack.com/services/T000/B000/XXXX");
/// // The webhook address is the secret: `Debug` shows its host only.
/// assert_eq!(format!("{slack:?}"), r#"SlackNotifier { url: "https://hooks.slack.com/[REDACTED]", .. }"#);
/// ```
#[derive(Clone)]
pub struct SlackNotifier {
    url: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for SlackNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackNotifier")
            .field("url", &host_only(&self.url))
            .finish_non_exhaustive()
    }
}

/// A secret URL as `Debug` shows it: scheme and host, nothing that authenticates.
fn host_only(url: &str) -> String {
    match url.parse::<http::Uri>() {
        Ok(uri) => match (uri.scheme_str(), uri.host()) {
            (Some(scheme), Some(host)) => format!("{scheme}://{host}/[REDACTED]"),
            _ => "[REDACTED]".to_owned(),
        },
        Err(_) => "[REDACTED]".to_owned(),
    }
}

impl SlackNotifier {
    /// Posts to the webhook at `url` (a secret: it is never logged).
    ///
    /// ```
    /// use towerscope_alert::{Delivery, SlackNotifier};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let slack = SlackNotifier::new("https://hooks.slack.com/services/T000/B000/XXXX");
    /// let delivery = Delivery::builder(slack).spawn();
    /// # drop(delivery);
    /// # });
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            client: client(),
        }
    }

    /// The JSON body sent for `n`.
    ///
    /// ```
    /// # use std::time::{Duration, Instant, SystemTime};
    /// # use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// # let rule = Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0);
    /// # let mut eval = Evaluator::new(vec![rule], Duration::from_secs(3600));
    /// # let firing = eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(150.0)]).remove(0);
    /// let body = towerscope_alert::SlackNotifier::payload(&firing);
    /// assert!(body["text"].as_str().unwrap().starts_with("[FIRING] Busy"));
    /// ```
    pub fn payload(n: &Notification) -> Value {
        let a = n.alert();
        let color = match (n.is_resolved(), a.severity) {
            (true, _) => "#2eb886",
            (false, Severity::Critical) => "#d00000",
            (false, Severity::High) => "#e01e5a",
            (false, Severity::Medium) => "#ecb22e",
            (false, Severity::Low) => "#439fe0",
        };
        let title = format!(
            "[{}] {} ({})",
            status_word(n).to_uppercase(),
            a.name,
            a.severity.as_str()
        );
        let mut fields: Vec<Value> = a
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| json!({ "title": k, "value": v, "short": true }))
            .collect();
        if let Some(rb) = a.annotations.get("runbook_url") {
            fields.push(json!({ "title": "runbook", "value": rb, "short": false }));
        }
        json!({
            "text": format!("{title}: {}", a.message),
            "attachments": [{
                "color": color,
                "title": title,
                "text": a.message,
                "fields": fields,
                "footer": "towerscope",
            }]
        })
    }
}

impl Notifier for SlackNotifier {
    fn name(&self) -> &str {
        "slack"
    }
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(
            async move { post_json(&self.client, &self.url, &Self::payload(n), &[], is_2xx).await },
        )
    }
}

/// PagerDuty Events API v2: `trigger` on firing and `resolve` on resolution, with the
/// alert's fingerprint as `dedup_key`, so PagerDuty keeps one incident per alert. It
/// answers 202; 429 and 5xx are retried, other 4xx are permanent.
///
/// ```
/// let pd = towerscope_alert::PagerDutyNotifier::new("R0UT1NGKEY")
///     .endpoint("https://events.eu.pagerduty.com/v2/enqueue");
/// assert!(!format!("{pd:?}").contains("R0UT1NGKEY"), "the routing key is a secret");
/// ```
#[derive(Clone)]
pub struct PagerDutyNotifier {
    routing_key: String,
    endpoint: String,
    source: String,
    client: reqwest::Client,
}

impl std::fmt::Debug for PagerDutyNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PagerDutyNotifier")
            .field("routing_key", &"[REDACTED]")
            .field("endpoint", &towerscope_core::redacted_url(&self.endpoint))
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl PagerDutyNotifier {
    /// Events for the service integration with `routing_key`, to PagerDuty's US endpoint.
    ///
    /// ```
    /// let pd = towerscope_alert::PagerDutyNotifier::new("R0UT1NGKEY").source("shop-api");
    /// # let _ = pd;
    /// ```
    pub fn new(routing_key: impl Into<String>) -> Self {
        Self {
            routing_key: routing_key.into(),
            endpoint: "https://events.pagerduty.com/v2/enqueue".into(),
            source: hostname(),
            client: client(),
        }
    }

    /// Another endpoint (PagerDuty's EU service region, or a test receiver).
    ///
    /// ```
    /// // A PagerDuty-compatible receiver of your own (the default is PagerDuty's Events API v2).
    /// let pd = towerscope_alert::PagerDutyNotifier::new("key").endpoint("http://127.0.0.1:9000/v2/enqueue");
    /// # let _ = pd;
    /// ```
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = url.into();
        self
    }

    /// The `source` field (default: this host's name).
    ///
    /// ```
    /// # use std::time::{Duration, Instant, SystemTime};
    /// # use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// # let rule = Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0);
    /// # let mut eval = Evaluator::new(vec![rule], Duration::from_secs(3600));
    /// # let firing = eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(150.0)]).remove(0);
    /// let pd = towerscope_alert::PagerDutyNotifier::new("key").source("shop-api.eu-1");
    /// assert_eq!(pd.payload(&firing)["payload"]["source"], "shop-api.eu-1");
    /// ```
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.source = source.into();
        self
    }

    /// The JSON body sent for `n`.
    ///
    /// ```
    /// # use std::time::{Duration, Instant, SystemTime};
    /// # use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// # let rule = Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0);
    /// # let mut eval = Evaluator::new(vec![rule], Duration::from_secs(3600));
    /// # let firing = eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(150.0)]).remove(0);
    /// let pd = towerscope_alert::PagerDutyNotifier::new("key");
    /// let event = pd.payload(&firing);
    /// assert_eq!(event["event_action"], "trigger");
    /// // The same key on resolution, so PagerDuty closes the incident it opened.
    /// assert_eq!(event["dedup_key"], firing.alert().fingerprint.as_str());
    /// ```
    pub fn payload(&self, n: &Notification) -> Value {
        let a = n.alert();
        match n {
            Notification::Resolved { .. } => json!({
                "routing_key": self.routing_key,
                "event_action": "resolve",
                "dedup_key": a.fingerprint,
            }),
            Notification::Firing(_) => {
                let severity = match a.severity {
                    Severity::Critical => "critical",
                    Severity::High => "error",
                    Severity::Medium => "warning",
                    Severity::Low => "info",
                };
                let mut summary = format!("{}: {}", a.name, a.message);
                if summary.len() > 1024 {
                    let mut end = 1021;
                    while !summary.is_char_boundary(end) {
                        end -= 1;
                    }
                    summary.truncate(end);
                    summary.push_str("...");
                }
                let mut body = json!({
                    "routing_key": self.routing_key,
                    "event_action": "trigger",
                    "dedup_key": a.fingerprint,
                    "payload": {
                        "summary": summary,
                        "source": self.source,
                        "severity": severity,
                        "timestamp": rfc3339(a.firing_since.unwrap_or(a.active_since)),
                        "class": a.name,
                        "custom_details": {
                            "value": a.value,
                            "threshold": a.threshold,
                            "labels": a.labels,
                            "annotations": a.annotations,
                        },
                    },
                    "client": "towerscope",
                });
                if let Some(rb) = a.annotations.get("runbook_url") {
                    body["links"] = json!([{ "href": rb, "text": "Runbook" }]);
                }
                body
            }
        }
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "towerscope".into())
}

impl Notifier for PagerDutyNotifier {
    fn name(&self) -> &str {
        "pagerduty"
    }
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            post_json(&self.client, &self.endpoint, &self.payload(n), &[], |c| {
                c == 202 || c == 200
            })
            .await
        })
    }
}

/// Any HTTP endpoint, given the notification as JSON. With a secret, each request carries
/// `X-Towerscope-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, so the
/// receiver can check who sent it and refuse replays of old requests.
///
/// ```
/// let hook = towerscope_alert::WebhookNotifier::new("https://ops.example/alerts?token=t0k").secret("s3cret");
/// let shown = format!("{hook:?}");
/// assert!(!shown.contains("s3cret") && !shown.contains("t0k"), "{shown}");
/// ```
#[derive(Clone)]
pub struct WebhookNotifier {
    url: String,
    secret: Option<Vec<u8>>,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookNotifier")
            .field("url", &towerscope_core::redacted_url(&self.url))
            .field("secret", &self.secret.as_ref().map(|_| "[REDACTED]"))
            .finish_non_exhaustive()
    }
}

/// The signature header of [`WebhookNotifier`].
///
/// ```
/// // A receiver checks the HMAC-SHA256 of the body in this header before it trusts a post.
/// assert_eq!(towerscope_alert::SIGNATURE_HEADER, "x-towerscope-signature");
/// ```
pub const SIGNATURE_HEADER: &str = "x-towerscope-signature";

impl WebhookNotifier {
    /// Posts to `url`.
    ///
    /// ```
    /// let hook = towerscope_alert::WebhookNotifier::new("https://ops.example/hooks/alerts").secret("shared-secret");
    /// # let _ = hook;
    /// ```
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            secret: None,
            client: client(),
        }
    }

    /// Signs requests with `secret`.
    ///
    /// ```
    /// // Each post carries `x-towerscope-signature: t=<unix time>,v1=<HMAC-SHA256 hex>`.
    /// let hook = towerscope_alert::WebhookNotifier::new("https://ops.example/hooks/alerts").secret(b"shared-secret");
    /// # let _ = hook;
    /// ```
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    /// The JSON body sent for `n`.
    ///
    /// ```
    /// # use std::time::{Duration, Instant, SystemTime};
    /// # use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// # let rule = Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0);
    /// # let mut eval = Evaluator::new(vec![rule], Duration::from_secs(3600));
    /// # let firing = eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(150.0)]).remove(0);
    /// let body = towerscope_alert::WebhookNotifier::payload(&firing);
    /// assert_eq!(body["status"], "firing");
    /// assert_eq!(body["alert"]["name"], "Busy");
    /// ```
    pub fn payload(n: &Notification) -> Value {
        let a = n.alert();
        let mut v = json!({
            "status": status_word(n),
            "alert": a,
        });
        if let Notification::Resolved { ended, .. } = n {
            v["ended_at"] = json!(rfc3339(*ended));
        }
        v
    }

    /// The signature value for `body` sent at Unix time `t` with `secret`.
    ///
    /// ```
    /// let sig = towerscope_alert::WebhookNotifier::signature(b"key", 1700000000, b"{}");
    /// assert!(sig.starts_with("t=1700000000,v1="));
    /// ```
    pub fn signature(secret: &[u8], t: u64, body: &[u8]) -> String {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
    }
}

impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        "webhook"
    }
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let body = serde_json::to_vec(&Self::payload(n))
                .map_err(|e| DeliveryError::Permanent(e.to_string()))?;
            let mut extra = Vec::new();
            if let Some(secret) = &self.secret {
                let t = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                extra.push((
                    SIGNATURE_HEADER.to_owned(),
                    Self::signature(secret, t, &body),
                ));
            }
            post_bytes(&self.client, &self.url, body, &extra, is_2xx).await
        })
    }
}

struct AmInner {
    base: String,
    generator_url: String,
    resend: Duration,
    client: reqwest::Client,
    firing: Mutex<HashMap<String, Alert>>,
    /// Held across each POST, so a re-send can never land after a resolution it predates.
    post: tokio::sync::Mutex<()>,
}

/// Alertmanager API v2 (`POST /api/v2/alerts`), so Alertmanager groups, routes, inhibits and
/// silences at scale. Firing alerts are re-sent every `resend` interval (default 1 min) with
/// `endsAt` four intervals ahead, as Prometheus does, so Alertmanager keeps them open while
/// they fire and closes them by itself if this process dies; a resolution is sent with
/// `endsAt` set to when it ended. Create it inside a tokio runtime (it starts the re-send
/// task).
///
/// ```no_run
/// # async fn run() {
/// let am = towerscope_alert::AlertmanagerNotifier::new("http://alertmanager:9093")
///     .generator_url("http://shop.internal:8080/dashboard");
/// # let _ = am; }
/// ```
#[derive(Clone)]
pub struct AlertmanagerNotifier {
    inner: Arc<AmInner>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl std::fmt::Debug for AlertmanagerNotifier {
    /// The address without its user information (`http://user:password@am:9093` is how
    /// Alertmanager's basic auth is given) or query.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertmanagerNotifier")
            .field("base", &towerscope_core::redacted_url(&self.inner.base))
            .finish_non_exhaustive()
    }
}

impl AlertmanagerNotifier {
    /// Alertmanager at `base` (`http://host:9093`; `http://user:password@host:9093` for
    /// basic auth, which `Debug` and errors never show). Call it inside a tokio runtime: it
    /// keeps a task that re-sends firing alerts before Alertmanager would time them out.
    ///
    /// ```
    /// use towerscope_alert::{AlertmanagerNotifier, Delivery};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let am = AlertmanagerNotifier::new("http://alerts:s3cret@127.0.0.1:9093");
    /// assert!(!format!("{am:?}").contains("s3cret"));
    /// let delivery = Delivery::builder(am).spawn();
    /// # drop(delivery);
    /// # });
    /// ```
    pub fn new(base: impl Into<String>) -> Self {
        Self::build(base.into(), String::new(), Duration::from_secs(60))
    }

    fn build(base: String, generator_url: String, resend: Duration) -> Self {
        let inner = Arc::new(AmInner {
            base: base.trim_end_matches('/').to_owned(),
            generator_url,
            resend,
            client: client(),
            firing: Mutex::new(HashMap::new()),
            post: tokio::sync::Mutex::new(()),
        });
        let weak = Arc::downgrade(&inner);
        let task = tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + resend, resend);
            loop {
                ticker.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let _posting = inner.post.lock().await;
                let alerts: Vec<Alert> = inner
                    .firing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .values()
                    .cloned()
                    .collect();
                if alerts.is_empty() {
                    continue;
                }
                let body: Vec<Value> = alerts.iter().map(|a| inner.am_alert(a, None)).collect();
                if let Err(e) = post_json(
                    &inner.client,
                    &inner.url(),
                    &Value::Array(body),
                    &[],
                    is_2xx,
                )
                .await
                {
                    tracing::warn!(error = %e, "re-sending firing alerts to Alertmanager failed; next try in one interval");
                }
            }
        });
        Self {
            inner,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// The link each alert carries back to its source (`generatorURL`).
    ///
    /// ```
    /// # use std::time::{Duration, Instant, SystemTime};
    /// # use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// # let rule = Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0);
    /// # let mut eval = Evaluator::new(vec![rule], Duration::from_secs(3600));
    /// # let firing = eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(150.0)]).remove(0);
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async { // it keeps a resend task
    /// let am = towerscope_alert::AlertmanagerNotifier::new("http://127.0.0.1:9093")
    ///     .generator_url("https://shop.example/dashboard");
    /// assert_eq!(am.payload(&firing)["generatorURL"], "https://shop.example/dashboard");
    /// # });
    /// ```
    pub fn generator_url(self, url: impl Into<String>) -> Self {
        self.replace(|b, _, r| (b, url.into(), r))
    }

    /// How often firing alerts are re-sent (default 60 s; keep it below Alertmanager's
    /// `resolve_timeout`). At least 100 ms, at most a day.
    ///
    /// ```
    /// use std::time::Duration;
    /// // Alertmanager resolves an alert that is not re-sent before its `endsAt`: keep it fresh.
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async { // it keeps a resend task
    /// let am = towerscope_alert::AlertmanagerNotifier::new("http://127.0.0.1:9093").resend_every(Duration::from_secs(30));
    /// # let _ = am;
    /// # });
    /// ```
    pub fn resend_every(self, every: Duration) -> Self {
        let every = every.clamp(Duration::from_millis(100), towerscope_core::MAX_PERIOD);
        self.replace(|b, g, _| (b, g, every))
    }

    fn replace(
        self,
        f: impl FnOnce(String, String, Duration) -> (String, String, Duration),
    ) -> Self {
        if let Some(t) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            t.abort();
        }
        let (b, g, r) = f(
            self.inner.base.clone(),
            self.inner.generator_url.clone(),
            self.inner.resend,
        );
        Self::build(b, g, r)
    }

    /// The JSON alert Alertmanager receives for `n`.
    ///
    /// ```
    /// # use std::time::{Duration, Instant, SystemTime};
    /// # use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// # let rule = Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0);
    /// # let mut eval = Evaluator::new(vec![rule], Duration::from_secs(3600));
    /// # let firing = eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(150.0)]).remove(0);
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async { // it keeps a resend task
    /// let am = towerscope_alert::AlertmanagerNotifier::new("http://127.0.0.1:9093");
    /// let alert = am.payload(&firing);
    /// assert_eq!(alert["labels"]["alertname"], "Busy");
    /// assert!(alert["startsAt"].is_string() && alert["endsAt"].is_string());
    /// # });
    /// ```
    pub fn payload(&self, n: &Notification) -> Value {
        match n {
            Notification::Firing(a) => self.inner.am_alert(a, None),
            Notification::Resolved { alert, ended } => self.inner.am_alert(alert, Some(*ended)),
        }
    }
}

impl AmInner {
    fn url(&self) -> String {
        format!("{}/api/v2/alerts", self.base)
    }

    fn am_alert(&self, a: &Alert, ended: Option<SystemTime>) -> Value {
        let mut annotations = a.annotations.clone();
        annotations
            .entry("description".into())
            .or_insert_with(|| a.message.clone());
        let ends = ended.unwrap_or_else(|| SystemTime::now() + self.resend * 4);
        let mut v = json!({
            "labels": a.labels,
            "annotations": annotations,
            "startsAt": rfc3339(a.firing_since.unwrap_or(a.active_since)),
            "endsAt": rfc3339(ends),
        });
        if !self.generator_url.is_empty() {
            v["generatorURL"] = json!(self.generator_url);
        }
        v
    }
}

impl Notifier for AlertmanagerNotifier {
    fn name(&self) -> &str {
        "alertmanager"
    }
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        Box::pin(async move {
            let _posting = self.inner.post.lock().await;
            {
                let mut firing = self
                    .inner
                    .firing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                match n {
                    Notification::Firing(a) => {
                        firing.insert(a.fingerprint.clone(), a.clone());
                    }
                    Notification::Resolved { alert, .. } => {
                        firing.remove(&alert.fingerprint);
                    }
                }
            }
            let body = Value::Array(vec![self.payload(n)]);
            post_json(&self.inner.client, &self.inner.url(), &body, &[], is_2xx).await
        })
    }
}

/// Email over SMTP (lettre): plain on a trusted network, or STARTTLS, with optional
/// credentials.
///
/// ```
/// let mail = towerscope_alert::EmailNotifier::new("smtp.example.com", 587, "alerts@shop.example", ["oncall@shop.example"])
///     .unwrap()
///     .starttls(true)
///     .credentials("alerts", "app-password");
/// # let _ = mail;
/// ```
#[derive(Clone)]
pub struct EmailNotifier {
    host: String,
    port: u16,
    starttls: bool,
    root_pem: Option<Vec<u8>>,
    credentials: Option<(String, String)>,
    from: lettre::message::Mailbox,
    to: Vec<lettre::message::Mailbox>,
}

impl std::fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailNotifier")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("starttls", &self.starttls)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

/// An address that does not parse.
///
/// ```
/// let err = towerscope_alert::EmailNotifier::new("127.0.0.1", 25, "alerts@shop.example", ["not an address"])
///     .unwrap_err();
/// assert_eq!(err.to_string(), "invalid email address `not an address`");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("invalid email address `{0}`")]
pub struct AddressError(String);

impl EmailNotifier {
    /// Mail from `from` to every address in `to` through the server at `host:port`.
    ///
    /// ```
    /// let email = towerscope_alert::EmailNotifier::new("smtp.example", 587, "alerts@shop.example", ["oncall@shop.example"])
    ///     .expect("valid addresses")
    ///     .starttls(true)
    ///     .credentials("alerts", "app-password");
    /// # let _ = email;
    /// ```
    pub fn new<I, S>(
        host: impl Into<String>,
        port: u16,
        from: &str,
        to: I,
    ) -> Result<Self, AddressError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let parse = |s: &str| {
            s.parse::<lettre::message::Mailbox>()
                .map_err(|_| AddressError(s.to_owned()))
        };
        Ok(Self {
            host: host.into(),
            port,
            starttls: false,
            root_pem: None,
            credentials: None,
            from: parse(from)?,
            to: to
                .into_iter()
                .map(|s| parse(s.as_ref()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Requires STARTTLS before sending.
    ///
    /// ```
    /// let email = towerscope_alert::EmailNotifier::new("smtp.example", 587, "a@shop.example", ["b@shop.example"])
    ///     .unwrap()
    ///     .starttls(true); // upgrade the connection before authenticating
    /// # let _ = email;
    /// ```
    pub fn starttls(mut self, on: bool) -> Self {
        self.starttls = on;
        self
    }

    /// Also trusts this root certificate (PEM) for STARTTLS: a server with a certificate
    /// from a private CA. The system's roots are trusted anyway.
    ///
    /// ```
    /// let ca_pem = b"-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n".to_vec();
    /// let email = towerscope_alert::EmailNotifier::new("smtp.internal", 587, "a@shop.example", ["b@shop.example"])
    ///     .unwrap()
    ///     .starttls(true)
    ///     .root_certificate(ca_pem); // a private CA
    /// # let _ = email;
    /// ```
    pub fn root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_pem = Some(pem.into());
        self
    }

    /// Logs in with `user` and `password` (never logged).
    ///
    /// ```
    /// let email = towerscope_alert::EmailNotifier::new("smtp.example", 587, "a@shop.example", ["b@shop.example"])
    ///     .unwrap()
    ///     .credentials("alerts", "app-password"); // never logged: `Debug` leaves it out
    /// assert!(!format!("{email:?}").contains("app-password"));
    /// ```
    pub fn credentials(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.credentials = Some((user.into(), password.into()));
        self
    }

    /// The message for `n`.
    ///
    /// ```
    /// # use std::time::{Duration, Instant, SystemTime};
    /// # use towerscope_alert::{Condition, Evaluator, Rule, Sample, Signal};
    /// # let rule = Rule::new("Busy", Signal::InFlight, Condition::Gt, 100.0);
    /// # let mut eval = Evaluator::new(vec![rule], Duration::from_secs(3600));
    /// # let firing = eval.evaluate(Instant::now(), SystemTime::now(), |_| vec![Sample::single(150.0)]).remove(0);
    /// let email = towerscope_alert::EmailNotifier::new("smtp.example", 25, "alerts@shop.example", ["oncall@shop.example"])
    ///     .unwrap();
    /// let message = email.message(&firing).expect("a message");
    /// let text = String::from_utf8(message.formatted()).unwrap();
    /// assert!(text.contains("Subject: [FIRING] Busy"), "{text}");
    /// ```
    pub fn message(&self, n: &Notification) -> Result<lettre::Message, DeliveryError> {
        let a = n.alert();
        let subject = format!(
            "[{}] {} ({})",
            status_word(n).to_uppercase(),
            a.name,
            a.severity.as_str()
        );
        let mut body = format!(
            "{}\n\nvalue: {}\nthreshold: {}\n",
            a.message, a.value, a.threshold
        );
        for (k, v) in &a.labels {
            body.push_str(&format!("label {k}: {v}\n"));
        }
        for (k, v) in &a.annotations {
            body.push_str(&format!("{k}: {v}\n"));
        }
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .body(body)
            .map_err(|e| DeliveryError::Permanent(format!("building the email: {e}")))
    }
}

impl Notifier for EmailNotifier {
    fn name(&self) -> &str {
        "email"
    }
    fn send<'a>(&'a self, n: &'a Notification) -> SendFuture<'a> {
        use lettre::AsyncTransport as _;
        Box::pin(async move {
            let message = self.message(n)?;
            type Transport = lettre::AsyncSmtpTransport<lettre::Tokio1Executor>;
            let mut builder = if self.starttls {
                use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
                let setup = |e: lettre::transport::smtp::Error| {
                    DeliveryError::Permanent(format!("SMTP TLS setup: {e}"))
                };
                let mut tls = TlsParameters::builder(self.host.clone());
                if let Some(pem) = &self.root_pem {
                    tls = tls.add_root_certificate(Certificate::from_pem(pem).map_err(setup)?);
                }
                Transport::builder_dangerous(&self.host)
                    .port(self.port)
                    .tls(Tls::Required(tls.build().map_err(setup)?))
            } else {
                Transport::builder_dangerous(&self.host).port(self.port)
            };
            if let Some((user, password)) = &self.credentials {
                builder =
                    builder.credentials(lettre::transport::smtp::authentication::Credentials::new(
                        user.clone(),
                        password.clone(),
                    ));
            }
            builder
                .build()
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| {
                    if e.is_permanent() {
                        DeliveryError::Permanent(format!("SMTP: {e}"))
                    } else {
                        DeliveryError::retry(format!("SMTP: {e}"))
                    }
                })
        })
    }
}
