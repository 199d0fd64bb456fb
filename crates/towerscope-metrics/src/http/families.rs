//! Storage and encoding of the request metric families.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use hashbrown::Equivalent;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use towerscope_core::{GrpcCode, NormalizedMethod, TraceIds};

use crate::histogram::{AtomicHistogram, Buckets, HistogramSnapshot};
use crate::names::MetricNames;
use crate::series::{CappedMap, RecentSeries, SeriesText};
use crate::text::{self, Exemplar, Format};

/// Name of the performance-monitor series the layer feeds (seconds, tagged `route`).
///
/// ```
/// use std::time::Duration;
/// use tower::{ServiceBuilder, ServiceExt as _};
/// use towerscope_metrics::{HttpMetricsLayer, PERF_SERIES};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let perf = towerscope_perf::PerfMonitor::new();
/// let mut registry = prometheus_client::registry::Registry::default();
/// let layer = HttpMetricsLayer::builder().perf(perf.clone()).build(&mut registry).expect("valid");
/// let svc = ServiceBuilder::new().layer(layer).service_fn(|_req: http::Request<String>| async {
///     Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
/// });
/// drop(svc.oneshot(http::Request::new(String::new())).await.unwrap()); // an empty body is complete
/// let stats = perf.stats_tagged(PERF_SERIES, &[("route", "unmatched")], Duration::from_secs(60));
/// assert_eq!(stats.unwrap().count, 1);
/// # });
/// ```
pub const PERF_SERIES: &str = "http_server_request_duration_seconds";

/// Label value of the overflow series, for every label.
pub(crate) const OVERFLOW: &str = "_overflow";

/// Why a request counts as an error, the `error_type` label.
///
/// ```
/// use towerscope_metrics::ErrorType;
/// assert_eq!(ErrorType::Cancelled.as_str(), "cancelled");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ErrorType {
    /// HTTP status 5xx.
    ServerError,
    /// gRPC status a server owns (`UNKNOWN`, `DEADLINE_EXCEEDED`, `UNIMPLEMENTED`,
    /// `INTERNAL`, `UNAVAILABLE`, `DATA_LOSS`).
    GrpcServerError,
    /// The inner service returned `Err`.
    ServiceError,
    /// The handler or the body panicked.
    Panic,
    /// The client went away (or a timeout dropped the request) before the response ended.
    Cancelled,
    /// The response body failed.
    BodyError,
    /// A gRPC response stream ended without a `grpc-status`.
    GrpcMissingStatus,
}

impl ErrorType {
    /// The label value.
    ///
    /// ```
    /// use towerscope_metrics::ErrorType;
    /// assert_eq!(ErrorType::ServerError.as_str(), "5xx");
    /// assert_eq!(ErrorType::GrpcMissingStatus.as_str(), "grpc_missing_status");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServerError => "5xx",
            Self::GrpcServerError => "grpc_server_error",
            Self::ServiceError => "service_error",
            Self::Panic => "panic",
            Self::Cancelled => "cancelled",
            Self::BodyError => "body_error",
            Self::GrpcMissingStatus => "grpc_missing_status",
        }
    }
}

/// One finished request, as the layer hands it to the families.
#[derive(Debug)]
pub(crate) struct Completion<'a> {
    pub(crate) method: NormalizedMethod,
    pub(crate) route: &'a str,
    /// For gRPC calls, the service (`pkg.Service`).
    pub(crate) grpc_service: Option<&'a str>,
    /// HTTP status; 0 when there was no response.
    pub(crate) status: u16,
    pub(crate) grpc_code: Option<GrpcCode>,
    pub(crate) seconds: f64,
    pub(crate) trace: Option<TraceIds>,
    pub(crate) request_size: Option<u64>,
    pub(crate) response_size: u64,
    pub(crate) error: Option<ErrorType>,
}

// ---------------------------------------------------------------- keys

#[derive(Debug, PartialEq, Eq)]
struct HttpKey {
    method: NormalizedMethod,
    status: u16,
    route: Box<str>,
}

struct HttpKeyRef<'a> {
    method: NormalizedMethod,
    status: u16,
    route: &'a str,
}

impl Hash for HttpKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        HttpKeyRef {
            method: self.method,
            status: self.status,
            route: &self.route,
        }
        .hash(state);
    }
}

impl Hash for HttpKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.method as u8).hash(state);
        self.status.hash(state);
        self.route.hash(state);
    }
}

impl Equivalent<HttpKey> for HttpKeyRef<'_> {
    fn equivalent(&self, key: &HttpKey) -> bool {
        self.method == key.method && self.status == key.status && self.route == &*key.route
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct RpcKey {
    code: Option<GrpcCode>,
    path: Box<str>,
}

struct RpcKeyRef<'a> {
    code: Option<GrpcCode>,
    path: &'a str,
}

impl Hash for RpcKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.code.hash(state);
        self.path.hash(state);
    }
}

impl Equivalent<RpcKey> for RpcKeyRef<'_> {
    fn equivalent(&self, key: &RpcKey) -> bool {
        self.code == key.code && self.path == &*key.path
    }
}

// Derived `Hash` for `RpcKey` hashes `Box<str>` as `str`, matching `RpcKeyRef`.

#[derive(Debug, PartialEq, Eq, Hash)]
struct ErrorKey {
    error: ErrorType,
    route: Box<str>,
}

struct ErrorKeyRef<'a> {
    error: ErrorType,
    route: &'a str,
}

impl Hash for ErrorKeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.error.hash(state);
        self.route.hash(state);
    }
}

impl Equivalent<ErrorKey> for ErrorKeyRef<'_> {
    fn equivalent(&self, key: &ErrorKey) -> bool {
        self.error == key.error && self.route == &*key.route
    }
}

// ---------------------------------------------------------------- series

/// The latest exemplar of each bucket. Written with `try_lock`: under contention an
/// exemplar is skipped rather than waited for.
#[derive(Debug)]
struct Exemplars(Mutex<Box<[Option<Exemplar>]>>);

impl Exemplars {
    fn new(buckets: &Buckets) -> Self {
        Self(Mutex::new(vec![None; buckets.bounds().len() + 1].into()))
    }

    fn record(&self, index: usize, ids: &TraceIds, value: f64) {
        if let Ok(mut slots) = self.0.try_lock() {
            if let Some(slot) = slots.get_mut(index) {
                *slot = Some(Exemplar {
                    trace_id: ids.trace_id,
                    span_id: ids.span_id,
                    value,
                });
            }
        }
    }

    /// Runs `f` on the exemplars, under their lock (observers skip, never wait).
    fn with<R>(&self, f: impl FnOnce(&[Option<Exemplar>]) -> R) -> R {
        let slots = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&slots)
    }
}

/// One observed histogram: counts and, optionally, exemplars.
#[derive(Debug)]
struct Observed {
    hist: AtomicHistogram,
    exemplars: Option<Exemplars>,
}

impl Observed {
    fn new(buckets: &Buckets, exemplars: bool) -> Self {
        Self {
            hist: AtomicHistogram::new(buckets),
            exemplars: exemplars.then(|| Exemplars::new(buckets)),
        }
    }

    /// Writes the samples (with exemplars in OpenMetrics); returns the count.
    fn write_text(
        &self,
        out: &mut String,
        format: Format,
        name: &str,
        labels: &str,
        le: &[Box<str>],
    ) -> u64 {
        let snap = self.hist.snapshot();
        let lines = text::HistogramLines {
            labels,
            le,
            counts: snap.counts(),
            sum: snap.sum,
            exemplars: None,
        };
        match &self.exemplars {
            Some(ex) if format == Format::OpenMetrics => ex.with(|ex| {
                text::push_histogram_series(
                    out,
                    format,
                    name,
                    &text::HistogramLines {
                        exemplars: Some(ex),
                        ..lines
                    },
                );
            }),
            _ => text::push_histogram_series(out, format, name, &lines),
        }
        snap.count()
    }

    #[inline]
    fn observe(&self, buckets: &Buckets, v: f64, trace: Option<&TraceIds>) {
        let i = buckets.index(v);
        self.hist.observe_at(i, v);
        if let (Some(ex), Some(ids)) = (&self.exemplars, trace) {
            if ids.sampled {
                ex.record(i, ids, v);
            }
        }
    }
}

#[derive(Debug)]
struct HttpSeries {
    /// The route label's value, unescaped (what the recent series compare).
    route: Box<str>,
    /// `method="GET",route="/x",status="200"` (escaped).
    labels: Box<str>,
    /// `method="GET",route="/x"` (escaped).
    labels_no_status: Box<str>,
    status: Box<str>,
    duration: Observed,
    request_size: Option<AtomicHistogram>,
    response_size: Option<AtomicHistogram>,
    /// The performance monitor's series for this route, when one is attached.
    perf: Option<towerscope_perf::Series>,
}

#[derive(Debug)]
struct RpcSeries {
    labels: Box<str>,
    service: Box<str>,
    method: Box<str>,
    code: &'static str,
    duration: Observed,
}

#[derive(Debug)]
struct ErrorSeries {
    labels: Box<str>,
    count: AtomicU64,
}

// ---------------------------------------------------------------- recent series

thread_local! {
    static RECENT_HTTP: RefCell<RecentSeries<HttpSeries>> =
        const { RefCell::new(RecentSeries::new()) };
    static RECENT_RPC: RefCell<RecentSeries<RpcSeries>> =
        const { RefCell::new(RecentSeries::new()) };
}

impl SeriesText for HttpSeries {
    fn series_text(&self) -> &str {
        &self.route
    }
}

impl SeriesText for RpcSeries {
    fn series_text(&self) -> &str {
        &self.method
    }
}

// ---------------------------------------------------------------- families

/// What to record beyond the duration.
#[derive(Debug, Clone)]
pub(crate) struct FamilyOptions {
    pub(crate) names: MetricNames,
    pub(crate) duration_buckets: Buckets,
    pub(crate) size_buckets: Buckets,
    pub(crate) request_size: bool,
    pub(crate) response_size: bool,
    pub(crate) exemplars: bool,
    pub(crate) max_series: usize,
    pub(crate) perf: Option<towerscope_perf::PerfMonitor>,
}

/// Every request metric family of one [`HttpMetricsLayer`](crate::HttpMetricsLayer).
#[derive(Debug)]
pub(crate) struct HttpFamilies {
    opts: FamilyOptions,
    http: CappedMap<HttpKey, Arc<HttpSeries>>,
    rpc: CappedMap<RpcKey, Arc<RpcSeries>>,
    errors: CappedMap<ErrorKey, ErrorSeries>,
}

impl HttpFamilies {
    pub(crate) fn new(opts: FamilyOptions) -> Self {
        let http_overflow = Arc::new(new_http_series(&opts, OVERFLOW, OVERFLOW, OVERFLOW));
        let rpc_overflow = Arc::new(RpcSeries {
            labels: render_rpc_labels(OVERFLOW, OVERFLOW, OVERFLOW),
            service: OVERFLOW.into(),
            method: OVERFLOW.into(),
            code: OVERFLOW,
            duration: Observed::new(&opts.duration_buckets, opts.exemplars),
        });
        let err_overflow = ErrorSeries {
            labels: render_error_labels(&opts.names, OVERFLOW, OVERFLOW),
            count: AtomicU64::new(0),
        };
        Self {
            http: CappedMap::new("http", opts.max_series, http_overflow),
            rpc: CappedMap::new("rpc", opts.max_series, rpc_overflow),
            errors: CappedMap::new("errors", opts.max_series, err_overflow),
            opts,
        }
    }

    /// Records one finished request.
    pub(crate) fn record(&self, c: &Completion<'_>) {
        let opts = &self.opts;
        let observe = |s: &HttpSeries| {
            s.duration
                .observe(&opts.duration_buckets, c.seconds, c.trace.as_ref());
            if let Some(p) = &s.perf {
                p.record(c.seconds);
            }
            if let (Some(h), Some(size)) = (&s.request_size, c.request_size) {
                let v = size as f64;
                h.observe_at(opts.size_buckets.index(v), v);
            }
            if let Some(h) = &s.response_size {
                let v = c.response_size as f64;
                h.observe_at(opts.size_buckets.index(v), v);
            }
        };
        let key = HttpKeyRef {
            method: c.method,
            status: c.status,
            route: c.route,
        };
        let tag = (c.method as u32) << 16 | u32::from(c.status);
        self.http.with_recent(
            &RECENT_HTTP,
            (tag, c.route, &key),
            || {
                let mut buf = itoa::Buffer::new();
                let status = if c.status == 0 {
                    ""
                } else {
                    buf.format(c.status)
                };
                let series = new_http_series(opts, c.method.as_str(), c.route, status);
                let key = HttpKey {
                    method: c.method,
                    status: c.status,
                    route: c.route.into(),
                };
                (key, Arc::new(series))
            },
            observe,
        );
        self.record_others(c);
    }

    /// The gRPC and error families of one finished request.
    fn record_others(&self, c: &Completion<'_>) {
        let opts = &self.opts;
        if let (Some(service), Some(_)) = (c.grpc_service, &opts.names.rpc_duration) {
            let path = c.route.strip_prefix('/').unwrap_or(c.route);
            let key = RpcKeyRef {
                code: c.grpc_code,
                path,
            };
            let tag = c.grpc_code.map_or(0, |code| u32::from(code as u8) + 1);
            self.rpc.with_recent(
                &RECENT_RPC,
                (tag, path, &key),
                || {
                    let code = c.grpc_code.map_or("", GrpcCode::as_str);
                    let series = RpcSeries {
                        labels: render_rpc_labels(service, path, code),
                        service: service.into(),
                        method: path.into(),
                        code,
                        duration: Observed::new(&opts.duration_buckets, opts.exemplars),
                    };
                    (
                        RpcKey {
                            code: c.grpc_code,
                            path: path.into(),
                        },
                        Arc::new(series),
                    )
                },
                |s| {
                    s.duration
                        .observe(&opts.duration_buckets, c.seconds, c.trace.as_ref())
                },
            );
        }
        if let (Some(error), Some(_)) = (c.error, &opts.names.errors) {
            let key = ErrorKeyRef {
                error,
                route: c.route,
            };
            self.errors.with(
                &key,
                || {
                    let series = ErrorSeries {
                        labels: render_error_labels(&opts.names, error.as_str(), c.route),
                        count: AtomicU64::new(0),
                    };
                    (
                        ErrorKey {
                            error,
                            route: c.route.into(),
                        },
                        series,
                    )
                },
                |s| {
                    s.count.fetch_add(1, Ordering::Relaxed);
                },
            );
        }
    }

    fn overflow_counts(&self) -> [(&'static str, u64); 3] {
        [
            (self.http.family(), self.http.overflowed()),
            (self.rpc.family(), self.rpc.overflowed()),
            (self.errors.family(), self.errors.overflowed()),
        ]
    }

    /// Number of distinct label sets of the HTTP families (not counting overflow).
    pub(crate) fn http_series_count(&self) -> usize {
        self.http.read().len()
    }

    /// Writes every family as exposition text.
    pub(crate) fn write_text(&self, format: Format, out: &mut String) {
        let names = &self.opts.names;
        let le = self.opts.duration_buckets.rendered();
        let http = self.http.read();
        let mut series: Vec<&HttpSeries> = http.values().map(|s| &**s).collect();
        series.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
        let overflow = self.http.overflow();
        let overflow_used = overflow.duration.hist.snapshot().count() > 0;
        if overflow_used {
            series.push(overflow);
        }

        // Duration histogram, with or without the status label.
        let help = "Duration of HTTP server requests, to the end of the response body.";
        text::push_header(
            out,
            format,
            &names.request_duration,
            help,
            "histogram",
            Some("seconds"),
        );
        let mut counts: Vec<(&str, u64)> = Vec::with_capacity(series.len());
        if names.duration_has_status {
            for s in &series {
                let count =
                    s.duration
                        .write_text(out, format, &names.request_duration, &s.labels, le);
                counts.push((&s.labels, count));
            }
        } else {
            let mut merged: BTreeMap<&str, (HistogramSnapshot, Vec<Option<Exemplar>>)> =
                BTreeMap::new();
            for s in &series {
                let snap = s.duration.hist.snapshot();
                counts.push((&s.labels, snap.count()));
                let entry = merged.entry(&s.labels_no_status).or_default();
                entry.0.merge(&snap);
                if let (Some(ex), Format::OpenMetrics) = (&s.duration.exemplars, format) {
                    ex.with(|ex| {
                        entry.1.resize(ex.len(), None);
                        for (slot, e) in entry.1.iter_mut().zip(ex) {
                            if e.is_some() {
                                *slot = *e;
                            }
                        }
                    });
                }
            }
            for (labels, (snap, ex)) in &merged {
                text::push_histogram_series(
                    out,
                    format,
                    &names.request_duration,
                    &text::HistogramLines {
                        labels,
                        le,
                        counts: snap.counts(),
                        sum: snap.sum,
                        exemplars: Some(ex),
                    },
                );
            }
        }

        if let Some(name) = &names.requests {
            text::push_header(out, format, name, "HTTP server requests.", "counter", None);
            for (labels, count) in &counts {
                text::push_counter_sample(out, name, labels, *count);
            }
        }

        let size_le = self.opts.size_buckets.rendered();
        for (enabled, name, help, pick) in [
            (
                self.opts.request_size,
                &names.request_size,
                "Size of HTTP request bodies, from Content-Length.",
                (|s: &HttpSeries| s.request_size.as_ref())
                    as fn(&HttpSeries) -> Option<&AtomicHistogram>,
            ),
            (
                self.opts.response_size,
                &names.response_size,
                "Size of HTTP response bodies, bytes sent.",
                |s: &HttpSeries| s.response_size.as_ref(),
            ),
        ] {
            if !enabled {
                continue;
            }
            text::push_header(out, format, name, help, "histogram", Some("bytes"));
            for s in &series {
                if let Some(h) = pick(s) {
                    let snap = h.snapshot();
                    text::push_histogram_series(
                        out,
                        format,
                        name,
                        &text::HistogramLines {
                            labels: &s.labels,
                            le: size_le,
                            counts: snap.counts(),
                            sum: snap.sum,
                            exemplars: None,
                        },
                    );
                }
            }
        }
        drop(http);

        if let Some(name) = &names.errors {
            text::push_header(
                out,
                format,
                name,
                "HTTP server requests that failed, by error type.",
                "counter",
                None,
            );
            let errors = self.errors.read();
            let mut rows: Vec<&ErrorSeries> = errors.values().collect();
            rows.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
            let overflow = self.errors.overflow();
            if overflow.count.load(Ordering::Relaxed) > 0 {
                rows.push(overflow);
            }
            for s in rows {
                text::push_counter_sample(out, name, &s.labels, s.count.load(Ordering::Relaxed));
            }
        }

        if let Some(name) = &names.rpc_duration {
            let rpc = self.rpc.read();
            let mut rows: Vec<&RpcSeries> = rpc.values().map(|s| &**s).collect();
            rows.sort_unstable_by(|a, b| a.labels.cmp(&b.labels));
            let overflow = self.rpc.overflow();
            if overflow.duration.hist.snapshot().count() > 0 {
                rows.push(overflow);
            }
            if !rows.is_empty() {
                text::push_header(
                    out,
                    format,
                    name,
                    "Duration of gRPC server calls.",
                    "histogram",
                    Some("seconds"),
                );
                for s in rows {
                    s.duration.write_text(out, format, name, &s.labels, le);
                }
            }
        }

        text::push_header(
            out,
            format,
            "towerscope_series_overflow",
            "Observations sent to a family's overflow series because its cardinality cap was reached.",
            "counter",
            None,
        );
        for (family, count) in self.overflow_counts() {
            let mut labels = String::new();
            text::push_label(&mut labels, true, "family", family);
            text::push_counter_sample(out, "towerscope_series_overflow", &labels, count);
        }
    }

    /// Encodes through prometheus-client's API (no exemplars), for registries encoded
    /// outside [`MetricsService`](crate::MetricsService).
    pub(crate) fn encode_api(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let names = &self.opts.names;
        let http = self.http.read();
        let mut series: Vec<(Option<&HttpKey>, &HttpSeries)> =
            http.iter().map(|(k, v)| (Some(k), &**v)).collect();
        series.sort_unstable_by(|a, b| a.1.labels.cmp(&b.1.labels));
        let overflow = self.http.overflow();
        if overflow.duration.hist.snapshot().count() > 0 {
            series.push((None, overflow));
        }
        let labels_of =
            |k: Option<&HttpKey>, s: &HttpSeries, with_status: bool| -> Vec<(String, String)> {
                let (m, r) = k.map_or((OVERFLOW, OVERFLOW), |k| (k.method.as_str(), &*k.route));
                let mut v = vec![
                    (names.method_label.to_string(), m.to_owned()),
                    (names.route_label.to_string(), r.to_owned()),
                ];
                if with_status {
                    v.push((names.status_label.to_string(), s.status.to_string()));
                }
                v
            };
        let bounds = self.opts.duration_buckets.bounds();
        {
            let mut fam = encoder.encode_descriptor(
                &names.request_duration,
                "Duration of HTTP server requests, to the end of the response body.",
                None,
                MetricType::Histogram,
            )?;
            if names.duration_has_status {
                for (k, s) in &series {
                    let snap = s.duration.hist.snapshot();
                    let labels = labels_of(*k, s, true);
                    encode_hist(&mut fam, &labels, bounds, &snap)?;
                }
            } else {
                let mut merged: BTreeMap<Vec<(String, String)>, HistogramSnapshot> =
                    BTreeMap::new();
                for (k, s) in &series {
                    merged
                        .entry(labels_of(*k, s, false))
                        .or_default()
                        .merge(&s.duration.hist.snapshot());
                }
                for (labels, snap) in &merged {
                    encode_hist(&mut fam, labels, bounds, snap)?;
                }
            }
        }
        if let Some(name) = &names.requests {
            let mut fam = encoder.encode_descriptor(
                name,
                "HTTP server requests.",
                None,
                MetricType::Counter,
            )?;
            for (k, s) in &series {
                let labels = labels_of(*k, s, true);
                fam.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(
                        &s.duration.hist.snapshot().count(),
                        None,
                    )?;
            }
        }
        let size_bounds = self.opts.size_buckets.bounds();
        for (enabled, name, is_request) in [
            (self.opts.request_size, &names.request_size, true),
            (self.opts.response_size, &names.response_size, false),
        ] {
            if !enabled {
                continue;
            }
            let mut fam = encoder.encode_descriptor(
                name,
                "Size of HTTP bodies in bytes.",
                None,
                MetricType::Histogram,
            )?;
            for (k, s) in &series {
                let h = if is_request {
                    &s.request_size
                } else {
                    &s.response_size
                };
                if let Some(h) = h {
                    encode_hist(
                        &mut fam,
                        &labels_of(*k, s, true),
                        size_bounds,
                        &h.snapshot(),
                    )?;
                }
            }
        }
        drop(http);
        if let Some(name) = &names.errors {
            let mut fam = encoder.encode_descriptor(
                name,
                "HTTP server requests that failed, by error type.",
                None,
                MetricType::Counter,
            )?;
            let errors = self.errors.read();
            for (k, s) in errors.iter() {
                let labels = [
                    (names.error_type_label.as_ref(), k.error.as_str()),
                    (names.route_label.as_ref(), &*k.route),
                ];
                fam.encode_family(&labels)?
                    .encode_counter::<NoLabelSet, _, u64>(&s.count.load(Ordering::Relaxed), None)?;
            }
        }
        if let Some(name) = &names.rpc_duration {
            let rpc = self.rpc.read();
            if !rpc.is_empty() {
                let mut fam = encoder.encode_descriptor(
                    name,
                    "Duration of gRPC server calls.",
                    None,
                    MetricType::Histogram,
                )?;
                for s in rpc.values() {
                    let labels = [
                        ("rpc_system_name", "grpc"),
                        ("rpc_service", &*s.service),
                        ("rpc_method", &*s.method),
                        ("rpc_status_code", s.code),
                    ];
                    encode_hist(&mut fam, &labels, bounds, &s.duration.hist.snapshot())?;
                }
            }
        }
        let mut fam = encoder.encode_descriptor(
            "towerscope_series_overflow",
            "Observations sent to a family's overflow series because its cardinality cap was reached.",
            None,
            MetricType::Counter,
        )?;
        for (family, count) in self.overflow_counts() {
            fam.encode_family(&[("family", family)])?
                .encode_counter::<NoLabelSet, _, u64>(&count, None)?;
        }
        Ok(())
    }
}

fn encode_hist<L: prometheus_client::encoding::EncodeLabelSet>(
    fam: &mut prometheus_client::encoding::MetricEncoder<'_>,
    labels: &L,
    bounds: &[f64],
    snap: &HistogramSnapshot,
) -> std::fmt::Result {
    let buckets: Vec<(f64, u64)> = bounds
        .iter()
        .copied()
        .chain(std::iter::once(f64::INFINITY))
        .zip(snap.counts().iter().copied())
        .collect();
    fam.encode_family(labels)?.encode_histogram::<NoLabelSet>(
        snap.sum,
        snap.count(),
        &buckets,
        None,
    )
}

fn new_http_series(opts: &FamilyOptions, method: &str, route: &str, status: &str) -> HttpSeries {
    let names = &opts.names;
    let mut labels_no_status = String::new();
    text::push_label(&mut labels_no_status, true, &names.method_label, method);
    text::push_label(&mut labels_no_status, false, &names.route_label, route);
    let mut labels = labels_no_status.clone();
    text::push_label(&mut labels, false, &names.status_label, status);
    HttpSeries {
        route: route.into(),
        labels: labels.into(),
        labels_no_status: labels_no_status.into(),
        status: status.into(),
        duration: Observed::new(&opts.duration_buckets, opts.exemplars),
        request_size: opts
            .request_size
            .then(|| AtomicHistogram::new(&opts.size_buckets)),
        response_size: opts
            .response_size
            .then(|| AtomicHistogram::new(&opts.size_buckets)),
        perf: opts
            .perf
            .as_ref()
            .and_then(|p| p.series(PERF_SERIES, &[("route", route)])),
    }
}

fn render_rpc_labels(service: &str, method: &str, code: &str) -> Box<str> {
    let mut s = String::new();
    text::push_label(&mut s, true, "rpc_system_name", "grpc");
    text::push_label(&mut s, false, "rpc_service", service);
    text::push_label(&mut s, false, "rpc_method", method);
    text::push_label(&mut s, false, "rpc_status_code", code);
    s.into()
}

fn render_error_labels(names: &MetricNames, error: &str, route: &str) -> Box<str> {
    let mut s = String::new();
    text::push_label(&mut s, true, &names.error_type_label, error);
    text::push_label(&mut s, false, &names.route_label, route);
    s.into()
}

impl text::WriteText for HttpFamilies {
    fn write_text(&self, format: Format, out: &mut String) {
        HttpFamilies::write_text(self, format, out);
    }
}

/// The collector registered in the application's registry.
pub(crate) struct HttpCollector {
    families: std::sync::Arc<HttpFamilies>,
    as_text: std::sync::Arc<dyn text::WriteText>,
}

impl HttpCollector {
    pub(crate) fn new(families: std::sync::Arc<HttpFamilies>) -> Self {
        Self {
            as_text: families.clone(),
            families,
        }
    }
}

impl std::fmt::Debug for HttpCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpCollector").finish_non_exhaustive()
    }
}

impl prometheus_client::collector::Collector for HttpCollector {
    fn encode(&self, encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        if text::step_aside(&self.as_text) {
            return Ok(());
        }
        self.families.encode_api(encoder)
    }
}
