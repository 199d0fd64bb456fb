//! Page templates, the per-client rate limit, active sessions, and the metrics.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::payload::Vital;

/// The label for a page or API URL that matches no template.
///
/// ```
/// let pages = towerscope_rum::PageTemplates::new(["/cart"]);
/// assert_eq!(pages.normalize("/admin/users/7"), towerscope_rum::OTHER_PAGE);
/// ```
pub const OTHER_PAGE: &str = "other";

/// Route templates that page and API URLs are reduced to before they become labels, so a
/// raw URL (with IDs, queries, fragments) never does: `/products/{id}` matches
/// `/products/42?ref=ad#top`; anything else is `other`.
///
/// ```
/// let pages = towerscope_rum::PageTemplates::new(["/", "/products/{id}", "/api/orders/{id}"]);
/// assert_eq!(pages.normalize("https://shop.example/products/42?ref=ad"), "/products/{id}");
/// assert_eq!(pages.normalize("/secret/admin"), "other");
/// ```
#[derive(Debug, Clone, Default)]
pub struct PageTemplates {
    templates: Vec<(String, Vec<Option<String>>)>,
}

impl PageTemplates {
    /// From templates whose `{name}` segments match any single path segment.
    ///
    /// ```
    /// use towerscope_rum::PageTemplates;
    /// let pages = PageTemplates::new(["/orders/{id}", "/orders/new"]);
    /// // The first template that matches wins: list literal routes before their `{}` siblings.
    /// assert_eq!(pages.normalize("/orders/new"), "/orders/{id}");
    /// let pages = PageTemplates::new(["/orders/new", "/orders/{id}"]);
    /// assert_eq!(pages.normalize("/orders/new"), "/orders/new");
    /// assert_eq!(pages.normalize("/orders/17"), "/orders/{id}");
    /// ```
    pub fn new<I, S>(templates: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let templates = templates
            .into_iter()
            .map(Into::into)
            .map(|t: String| {
                let segments = segments(&t)
                    .map(|s| (!(s.starts_with('{') && s.ends_with('}'))).then(|| s.to_owned()))
                    .collect();
                (t, segments)
            })
            .collect();
        Self { templates }
    }

    /// The template `url` matches, or [`OTHER_PAGE`].
    ///
    /// ```
    /// let pages = towerscope_rum::PageTemplates::new(["/products/{id}"]);
    /// assert_eq!(pages.normalize("https://shop.example/products/42?ref=ad#reviews"), "/products/{id}");
    /// assert_eq!(pages.normalize("/products/"), "other"); // a `{}` segment is never empty
    /// assert_eq!(pages.normalize("/products/42/edit"), "other");
    /// ```
    pub fn normalize(&self, url: &str) -> &str {
        let path = path_of(url);
        let parts: Vec<&str> = segments(path).collect();
        self.templates
            .iter()
            .find(|(_, t)| {
                t.len() == parts.len()
                    && t.iter().zip(&parts).all(|(want, got)| match want {
                        Some(lit) => lit == got,
                        None => !got.is_empty(),
                    })
            })
            .map_or(OTHER_PAGE, |(t, _)| t.as_str())
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// The path of a URL: scheme and host dropped, query and fragment cut.
fn path_of(url: &str) -> &str {
    let rest = match url.find("://") {
        Some(i) => {
            let after = &url[i + 3..];
            after.find('/').map_or("/", |j| &after[j..])
        }
        None => url,
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// A token bucket per client address, bounded in the number of clients it remembers.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    per_minute: f64,
    burst: f64,
    max_clients: usize,
    clients: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    pub(crate) fn new(per_minute: u32, burst: u32, max_clients: usize) -> Self {
        Self {
            per_minute: f64::from(per_minute),
            burst: f64::from(burst.max(1)),
            max_clients,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `client` may send one more beacon now.
    pub(crate) fn allow(&self, client: IpAddr, now: Instant) -> bool {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !clients.contains_key(&client) && clients.len() >= self.max_clients {
            // Forget clients whose bucket has refilled: they are idle.
            let refill = Duration::from_secs_f64(self.burst / (self.per_minute / 60.0).max(1e-9));
            clients.retain(|_, (_, last)| now.saturating_duration_since(*last) < refill);
            if clients.len() >= self.max_clients {
                // Still full of active clients: refuse newcomers rather than grow.
                return false;
            }
        }
        let rate = self.per_minute / 60.0;
        let (tokens, last) = clients.entry(client).or_insert((self.burst, now));
        *tokens =
            (*tokens + now.saturating_duration_since(*last).as_secs_f64() * rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Distinct sessions seen recently (the dashboard's active users), bounded.
#[derive(Debug)]
pub(crate) struct Sessions {
    seen: Mutex<HashMap<String, Instant>>,
    max: usize,
}

impl Sessions {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            max,
        }
    }

    pub(crate) fn touch(&self, id: &str, now: Instant) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !seen.contains_key(id) && seen.len() >= self.max {
            seen.retain(|_, t| now.saturating_duration_since(*t) < Duration::from_secs(300));
            if seen.len() >= self.max {
                return;
            }
        }
        seen.insert(id.to_owned(), now);
    }

    pub(crate) fn active(&self, within: Duration, now: Instant) -> usize {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter(|t| now.saturating_duration_since(**t) <= within)
            .count()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct VitalLabels {
    pub(crate) page: String,
    pub(crate) rating: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ErrorLabels {
    pub(crate) page: String,
    pub(crate) browser: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PhaseLabels {
    pub(crate) page: String,
    pub(crate) phase: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ApiLabels {
    pub(crate) endpoint: String,
    pub(crate) status_class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PageLabel {
    pub(crate) page: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabel {
    pub(crate) outcome: &'static str,
}

/// What becomes of a beacon: `rum_beacons_total{outcome}`.
pub(crate) const BEACON_OUTCOMES: [&str; 4] = ["accepted", "invalid", "too_large", "rate_limited"];

type Hist<L> = Family<L, Histogram, fn() -> Histogram>;

fn family<L: Clone + std::hash::Hash + Eq>(ctor: fn() -> Histogram) -> Hist<L> {
    Family::new_with_constructor(ctor)
}

fn lcp_buckets() -> Histogram {
    Histogram::new(LCP_BUCKETS.iter().copied())
}
fn inp_buckets() -> Histogram {
    Histogram::new(INP_BUCKETS.iter().copied())
}
fn cls_buckets() -> Histogram {
    Histogram::new(CLS_BUCKETS.iter().copied())
}
fn ttfb_buckets() -> Histogram {
    Histogram::new(TTFB_BUCKETS.iter().copied())
}
fn api_buckets() -> Histogram {
    Histogram::new(API_BUCKETS.iter().copied())
}

const LCP_BUCKETS: &[f64] = &[0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0, 20.0];
const INP_BUCKETS: &[f64] = &[0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0];
const CLS_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0];
const TTFB_BUCKETS: &[f64] = &[0.1, 0.2, 0.4, 0.8, 1.2, 1.8, 3.0, 5.0, 10.0];
const API_BUCKETS: &[f64] = &[0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The RUM metric families.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    pub(crate) lcp: Hist<VitalLabels>,
    pub(crate) inp: Hist<VitalLabels>,
    pub(crate) cls: Hist<VitalLabels>,
    pub(crate) fcp: Hist<VitalLabels>,
    pub(crate) ttfb: Hist<VitalLabels>,
    pub(crate) load: Hist<PhaseLabels>,
    pub(crate) api: Hist<ApiLabels>,
    pub(crate) errors: Family<ErrorLabels, Counter>,
    pub(crate) clicks: Family<PageLabel, Counter>,
    pub(crate) beacons: Family<OutcomeLabel, Counter>,
}

impl Metrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Self {
            lcp: family(lcp_buckets),
            inp: family(inp_buckets),
            cls: family(cls_buckets),
            fcp: family(lcp_buckets),
            ttfb: family(ttfb_buckets),
            load: family(lcp_buckets),
            api: family(api_buckets),
            errors: Family::default(),
            clicks: Family::default(),
            beacons: Family::default(),
        };
        registry.register(
            "rum_lcp_seconds",
            "Largest Contentful Paint seen by real users",
            m.lcp.clone(),
        );
        registry.register(
            "rum_inp_seconds",
            "Interaction to Next Paint seen by real users",
            m.inp.clone(),
        );
        registry.register(
            "rum_cls",
            "Cumulative Layout Shift seen by real users",
            m.cls.clone(),
        );
        registry.register(
            "rum_fcp_seconds",
            "First Contentful Paint seen by real users",
            m.fcp.clone(),
        );
        registry.register(
            "rum_ttfb_seconds",
            "Time to First Byte seen by real users",
            m.ttfb.clone(),
        );
        registry.register(
            "rum_page_load_seconds",
            "DOMContentLoaded and load, from navigation start",
            m.load.clone(),
        );
        registry.register(
            "rum_api_request_duration_seconds",
            "fetch() calls timed in the browser",
            m.api.clone(),
        );
        registry.register(
            "rum_js_errors",
            "JavaScript errors and unhandled rejections",
            m.errors.clone(),
        );
        registry.register(
            "rum_clicks",
            "Clicks (when the page opts in)",
            m.clicks.clone(),
        );
        registry.register(
            "rum_beacons",
            "Beacons received, by outcome",
            m.beacons.clone(),
        );
        // Every outcome from the start, at 0: the first rejected beacon is then an increase
        // `rate()` sees, and a rule on it reads a series before anything went wrong.
        for outcome in BEACON_OUTCOMES {
            let _ = m.beacons.get_or_create(&OutcomeLabel { outcome });
        }
        m
    }

    pub(crate) fn vital(&self, vital: Vital) -> &Hist<VitalLabels> {
        match vital {
            Vital::Lcp => &self.lcp,
            Vital::Inp => &self.inp,
            Vital::Cls => &self.cls,
            Vital::Fcp => &self.fcp,
            Vital::Ttfb => &self.ttfb,
        }
    }
}

/// A low-cardinality browser family from a `User-Agent`.
///
/// ```
/// assert_eq!(towerscope_rum::browser_family(Some("Mozilla/5.0 ... Chrome/120.0 Safari/537.36 Edg/120.0")), "edge");
/// assert_eq!(towerscope_rum::browser_family(None), "other");
/// ```
pub fn browser_family(ua: Option<&str>) -> &'static str {
    let Some(ua) = ua else { return "other" };
    if ua.contains("Edg/") {
        "edge"
    } else if ua.contains("OPR/") || ua.contains("Opera") {
        "opera"
    } else if ua.contains("Firefox/") {
        "firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") || ua.contains("HeadlessChrome") {
        "chrome"
    } else if ua.contains("Safari/") {
        "safari"
    } else {
        "other"
    }
}
