//! Route resolution: the bounded `route` label of a request.
//!
//! A request's route is, in order of preference:
//! 1. what a user-supplied [`RouteClassifier`] returns;
//! 2. axum's `MatchedPath` (the template, `/users/{id}`), with the `axum` feature;
//! 3. for gRPC requests, the method path `/pkg.Service/Method` when it has that shape;
//! 4. otherwise the fixed value [`UNMATCHED_ROUTE`].
//!
//! A raw URL path never becomes a route: an unmatched request (a 404, a scanner probing
//! `/wp-admin.php`) collapses into one series.

use std::sync::Arc;

use http::Request;
use http::uri::PathAndQuery;

/// The label value of every request no route matched.
///
/// ```
/// assert_eq!(towerscope_core::UNMATCHED_ROUTE, "unmatched");
/// ```
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Longest gRPC method path accepted as a route; longer paths are [`Route::Unmatched`].
const MAX_GRPC_PATH: usize = 256;

/// The resolved route of one request, captured before the request moves into the inner
/// service. Cloning it never allocates (it holds inline, reference-counted or static
/// strings).
///
/// ```
/// use towerscope_core::Route;
/// assert_eq!(Route::Unmatched.as_str(), "unmatched");
/// assert_eq!(Route::Static("/login").as_str(), "/login");
/// ```
#[derive(Debug, Clone, Default)]
pub enum Route {
    /// axum's route template, copied out of its `MatchedPath` when it is short and cannot
    /// be interned (see [`Static`](Self::Static)).
    ///
    /// Every request on a route shares one `MatchedPath` allocation; holding a clone of it
    /// writes that allocation's reference count on every request, from every core, which
    /// profiles showed as the costliest instructions of the metrics layer with two threads
    /// serving one route.
    Inline(InlineRoute),
    /// axum's route template, when too long to copy inline.
    #[cfg(feature = "axum")]
    Matched(axum::extract::MatchedPath),
    /// A gRPC method path, `/pkg.Service/Method`.
    Grpc(PathAndQuery),
    /// A classifier's answer.
    Shared(Arc<str>),
    /// Text that lives as long as the process: a classifier's answer, or axum's route
    /// template, interned (at most 1024 templates of at most 512 bytes per process; the
    /// application's own routes, so a request's route is neither copied nor counted).
    Static(&'static str),
    /// No route matched.
    #[default]
    Unmatched,
}

impl Route {
    /// The label value.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use towerscope_core::Route;
    /// assert_eq!(Route::Shared(Arc::from("/orders")).as_str(), "/orders");
    /// ```
    pub fn as_str(&self) -> &str {
        match self {
            Self::Inline(r) => r.as_str(),
            #[cfg(feature = "axum")]
            Self::Matched(p) => p.as_str(),
            Self::Grpc(p) => p.path(),
            Self::Shared(s) => s,
            Self::Static(s) => s,
            Self::Unmatched => UNMATCHED_ROUTE,
        }
    }

    /// Whether no route matched.
    ///
    /// ```
    /// assert!(towerscope_core::Route::Unmatched.is_unmatched());
    /// ```
    pub fn is_unmatched(&self) -> bool {
        matches!(self, Self::Unmatched)
    }

    /// For a gRPC route, its service (`pkg.Service`) and method (`Method`).
    ///
    /// ```
    /// use towerscope_core::Route;
    /// let r = Route::Grpc(http::uri::PathAndQuery::from_static("/shop.Orders/Get"));
    /// assert_eq!(r.grpc_parts(), Some(("shop.Orders", "Get")));
    /// assert_eq!(Route::Unmatched.grpc_parts(), None);
    /// ```
    pub fn grpc_parts(&self) -> Option<(&str, &str)> {
        match self {
            Self::Grpc(p) => p.path().get(1..)?.split_once('/'),
            _ => None,
        }
    }
}

/// A route template of at most [`InlineRoute::CAPACITY`] bytes, held by value.
///
/// ```
/// use towerscope_core::InlineRoute;
/// assert_eq!(InlineRoute::new("/users/{id}").unwrap().as_str(), "/users/{id}");
/// assert!(InlineRoute::new(&"x".repeat(InlineRoute::CAPACITY + 1)).is_none());
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct InlineRoute {
    len: u8,
    bytes: [u8; InlineRoute::CAPACITY],
}

impl InlineRoute {
    /// The longest template held inline, in bytes.
    ///
    /// ```
    /// use towerscope_core::InlineRoute;
    /// assert!(InlineRoute::new(&"x".repeat(InlineRoute::CAPACITY)).is_some());
    /// assert!(InlineRoute::new(&"x".repeat(InlineRoute::CAPACITY + 1)).is_none()); // kept by reference instead
    /// ```
    pub const CAPACITY: usize = 46;

    /// A copy of `route`, if it fits.
    ///
    /// ```
    /// use towerscope_core::InlineRoute;
    /// let route = InlineRoute::new("/orders/{id}/items").expect("fits");
    /// assert_eq!(route.as_str(), "/orders/{id}/items");
    /// assert_eq!(InlineRoute::new(&"/x".repeat(24)), None); // 48 bytes
    /// ```
    pub fn new(route: &str) -> Option<Self> {
        let len = u8::try_from(route.len())
            .ok()
            .filter(|&n| usize::from(n) <= Self::CAPACITY)?;
        let mut bytes = [0; Self::CAPACITY];
        bytes[..route.len()].copy_from_slice(route.as_bytes());
        Some(Self { len, bytes })
    }

    /// The template.
    ///
    /// ```
    /// let route = towerscope_core::InlineRoute::new("/users/{id}").unwrap();
    /// assert_eq!(route.as_str(), "/users/{id}");
    /// assert_eq!(format!("{route:?}"), "\"/users/{id}\"");
    /// ```
    pub fn as_str(&self) -> &str {
        // Copied from a `&str` at a character boundary (the whole string): always UTF-8.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or(UNMATCHED_ROUTE)
    }
}

impl std::fmt::Debug for InlineRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A borrowed view of a request head, given to a [`RouteClassifier`].
///
/// ```
/// use towerscope_core::RequestHead;
/// let req = http::Request::get("/x").body(()).unwrap();
/// let head = RequestHead::of(&req);
/// assert_eq!(head.uri.path(), "/x");
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RequestHead<'a> {
    /// The request method.
    pub method: &'a http::Method,
    /// The request URI.
    pub uri: &'a http::Uri,
    /// The request headers.
    pub headers: &'a http::HeaderMap,
    /// The request extensions (axum's `MatchedPath` is here when routed).
    pub extensions: &'a http::Extensions,
}

impl<'a> RequestHead<'a> {
    /// Borrows the head of a request.
    ///
    /// ```
    /// use towerscope_core::RequestHead;
    /// let req = http::Request::post("/orders?debug=1").header("x-tenant", "acme").body(()).unwrap();
    /// let head = RequestHead::of(&req);
    /// assert_eq!(head.method, http::Method::POST);
    /// assert_eq!(head.uri.query(), Some("debug=1"));
    /// assert_eq!(head.headers["x-tenant"], "acme");
    /// ```
    pub fn of<B>(req: &'a Request<B>) -> Self {
        Self {
            method: req.method(),
            uri: req.uri(),
            headers: req.headers(),
            extensions: req.extensions(),
        }
    }
}

type ClassifyFn = dyn Fn(&RequestHead<'_>) -> Option<Route> + Send + Sync;

/// A user-supplied route classifier, consulted before any built-in rule.
///
/// Return `None` to fall through to the built-in rules. The answer must come from a bounded
/// set (a route table, a prefix list): the label is used as is. Return
/// [`Route::Static`] or a clone of a [`Route::Shared`] held in the table, so that no request
/// allocates.
///
/// ```
/// use towerscope_core::{Route, RouteClassifier, RequestHead};
/// let api = Route::Static("/api/*");
/// let classifier = RouteClassifier::new(move |req: &RequestHead<'_>| {
///     req.uri.path().starts_with("/api/").then(|| api.clone())
/// });
/// let req = http::Request::get("/api/v1/things/7").body(()).unwrap();
/// assert_eq!(classifier.classify(&RequestHead::of(&req)).unwrap().as_str(), "/api/*");
/// ```
#[derive(Clone)]
pub struct RouteClassifier(Arc<ClassifyFn>);

impl RouteClassifier {
    /// Wraps a function of the request head.
    ///
    /// ```
    /// use towerscope_core::{RequestHead, Route, RouteClassifier};
    /// // A bounded answer: one label per tenant prefix, none from the raw path.
    /// let classifier = RouteClassifier::new(|req: &RequestHead<'_>| {
    ///     match req.headers.get("x-tenant")?.as_bytes() {
    ///         b"acme" => Some(Route::Static("/tenant/acme")),
    ///         _ => Some(Route::Static("/tenant/other")),
    ///     }
    /// });
    /// let req = http::Request::get("/anything").header("x-tenant", "evil-123").body(()).unwrap();
    /// assert_eq!(classifier.classify(&RequestHead::of(&req)).unwrap().as_str(), "/tenant/other");
    /// ```
    pub fn new<F>(f: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> Option<Route> + Send + Sync + 'static,
    {
        Self(Arc::new(f))
    }

    /// Runs the classifier on a request head.
    ///
    /// ```
    /// use towerscope_core::{RequestHead, Route, RouteClassifier};
    /// let classifier = RouteClassifier::new(|req: &RequestHead<'_>| {
    ///     req.uri.path().starts_with("/static/").then_some(Route::Static("/static/*"))
    /// });
    /// let asset = http::Request::get("/static/app.js").body(()).unwrap();
    /// let other = http::Request::get("/users/7").body(()).unwrap();
    /// assert_eq!(classifier.classify(&RequestHead::of(&asset)).unwrap().as_str(), "/static/*");
    /// assert!(classifier.classify(&RequestHead::of(&other)).is_none()); // built-in rules decide
    /// ```
    pub fn classify(&self, req: &RequestHead<'_>) -> Option<Route> {
        (self.0)(req)
    }
}

impl std::fmt::Debug for RouteClassifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RouteClassifier(..)")
    }
}

/// Resolves the route of a request by the rules in the [module docs](self).
///
/// ```
/// use towerscope_core::resolve_route;
/// let req = http::Request::post("/shop.Orders/Get")
///     .header("content-type", "application/grpc")
///     .body(()).unwrap();
/// assert_eq!(resolve_route(&req, None).as_str(), "/shop.Orders/Get");
///
/// let raw = http::Request::get("/users/42").body(()).unwrap();
/// assert_eq!(resolve_route(&raw, None).as_str(), "unmatched");
/// ```
pub fn resolve_route<B>(req: &Request<B>, classifier: Option<&RouteClassifier>) -> Route {
    if let Some(route) = classifier.and_then(|c| c.classify(&RequestHead::of(req))) {
        return route;
    }
    #[cfg(feature = "axum")]
    if let Some(p) = req.extensions().get::<axum::extract::MatchedPath>() {
        if let Some(template) = interned::template(p) {
            return Route::Static(template);
        }
        return InlineRoute::new(p.as_str())
            .map_or_else(|| Route::Matched(p.clone()), Route::Inline);
    }
    if crate::is_grpc_request(req) {
        if let Some(pq) = req.uri().path_and_query() {
            if is_grpc_method_path(pq.path()) {
                return Route::Grpc(pq.clone());
            }
        }
    }
    Route::Unmatched
}

/// axum's route templates, kept for the life of the process so that a request's route is
/// a `&'static str`: nothing copied, checked or reference-counted per request.
///
/// Each thread remembers its last few `MatchedPath`s with their interned text. axum hands
/// every request on a route the same `Arc<str>`, so a request's template is found by its
/// address alone; the remembered clone keeps that allocation, and so its address, from being
/// reused for other text. A template nested routers build anew per request is found by its
/// text. Bounded: at most [`MAX_INTERNED_ROUTES`] templates of at most
/// [`MAX_INTERNED_LEN`] bytes; past that, routes are copied as before.
#[cfg(feature = "axum")]
mod interned {
    use std::cell::RefCell;
    use std::collections::HashSet;
    use std::sync::{LazyLock, Mutex, PoisonError};

    use axum::extract::MatchedPath;

    use super::{MAX_INTERNED_LEN, MAX_INTERNED_ROUTES};
    use crate::Ring;

    /// How many recent templates each thread keeps.
    const RECENT_ROUTES: usize = 8;

    /// A template and its interned text, or `None` when it could not be interned (past the
    /// cap), so that such a route does not take the table's lock on every request.
    type Recent = Ring<(MatchedPath, Option<&'static str>), RECENT_ROUTES>;

    thread_local! {
        static RECENT: RefCell<Recent> = const { RefCell::new(Ring::new()) };
    }

    static TABLE: LazyLock<Mutex<HashSet<&'static str>>> =
        LazyLock::new(|| Mutex::new(HashSet::new()));

    /// `path`'s template as interned text, or `None` past the bounds.
    pub(super) fn template(path: &MatchedPath) -> Option<&'static str> {
        let text = path.as_str();
        RECENT
            .try_with(|recent| {
                let mut recent = recent.try_borrow_mut().ok()?;
                if let Some((_, t)) = recent.find(|(p, _)| std::ptr::eq(p.as_str(), text)) {
                    return *t;
                }
                if let Some((_, t)) = recent.find(|(_, t)| *t == Some(text)) {
                    return *t;
                }
                let interned = intern(text);
                recent.push((path.clone(), interned));
                interned
            })
            .ok()
            .flatten()
    }

    fn intern(text: &str) -> Option<&'static str> {
        if text.len() > MAX_INTERNED_LEN {
            return None;
        }
        let mut table = TABLE.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = table.get(text) {
            return Some(*t);
        }
        if table.len() >= MAX_INTERNED_ROUTES {
            return None;
        }
        let interned: &'static str = Box::leak(Box::from(text));
        table.insert(interned);
        Some(interned)
    }
}

/// Most distinct axum route templates interned per process (an application's own routes;
/// past this many, routes are copied per request instead).
#[cfg(feature = "axum")]
const MAX_INTERNED_ROUTES: usize = 1024;

/// Longest axum route template interned, in bytes.
#[cfg(feature = "axum")]
const MAX_INTERNED_LEN: usize = 512;

/// Whether `path` has the shape `/pkg.Service/Method` (ASCII letters, digits, `_` and `.`
/// in the service, letters, digits and `_` in the method, at most 256 bytes).
///
/// ```
/// use towerscope_core::is_grpc_method_path;
/// assert!(is_grpc_method_path("/grpc.health.v1.Health/Check"));
/// assert!(!is_grpc_method_path("/a/b/c"));
/// assert!(!is_grpc_method_path("/svc/"));
/// assert!(!is_grpc_method_path("/../etc/passwd"));
/// ```
pub fn is_grpc_method_path(path: &str) -> bool {
    if path.len() > MAX_GRPC_PATH {
        return false;
    }
    let Some(rest) = path.strip_prefix('/') else {
        return false;
    };
    let Some((service, method)) = rest.split_once('/') else {
        return false;
    };
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    !service.is_empty()
        && !method.is_empty()
        && !service.starts_with('.')
        && !service.ends_with('.')
        && !service.contains("..")
        && service.bytes().all(|c| ident(c) || c == b'.')
        && method.bytes().all(ident)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_path_requires_grpc_content_type() {
        let req = Request::post("/shop.Orders/Get").body(()).expect("request");
        assert!(resolve_route(&req, None).is_unmatched());
    }

    #[test]
    fn malformed_grpc_paths_are_unmatched() {
        for path in ["/", "/a", "/a/", "//b", "/a.b/c/d", "/a%20b/c", "/.a/b"] {
            let req = Request::post(path)
                .header("content-type", "application/grpc")
                .body(())
                .expect("request");
            assert!(resolve_route(&req, None).is_unmatched(), "{path}");
        }
        let long = format!("/{}/M", "a".repeat(300));
        let req = Request::post(long.as_str())
            .header("content-type", "application/grpc")
            .body(())
            .expect("request");
        assert!(resolve_route(&req, None).is_unmatched());
    }

    #[test]
    fn classifier_wins_and_may_fall_through() {
        let c = RouteClassifier::new(|req: &RequestHead<'_>| {
            (req.uri.path() == "/special").then_some(Route::Static("/special"))
        });
        let special = Request::get("/special").body(()).expect("request");
        assert_eq!(resolve_route(&special, Some(&c)).as_str(), "/special");
        let other = Request::get("/x").body(()).expect("request");
        assert!(resolve_route(&other, Some(&c)).is_unmatched());
    }

    #[cfg(feature = "axum")]
    #[tokio::test]
    async fn axum_matched_path_is_the_template_short_or_long() {
        use std::sync::Mutex;
        use tower::ServiceExt;
        const LONG: &str = "/organisations/{org}/projects/{project}/environments/{env}";
        assert!(LONG.len() > InlineRoute::CAPACITY);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let seen2 = seen.clone();
        let app = axum::Router::new()
            .route("/users/{id}", axum::routing::get(|| async { "ok" }))
            .route(LONG, axum::routing::get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    let seen = seen2.clone();
                    async move {
                        let route = resolve_route(&req, None);
                        let interned = matches!(route, Route::Static(_));
                        seen.lock()
                            .expect("lock")
                            .push((route.as_str().to_owned(), interned));
                        next.run(req).await
                    }
                },
            ));
        for path in ["/users/42", "/organisations/a/projects/b/environments/c"] {
            let resp = app
                .clone()
                .oneshot(
                    Request::get(path)
                        .body(axum::body::Body::empty())
                        .expect("req"),
                )
                .await
                .expect("infallible");
            assert_eq!(resp.status(), 200);
        }
        assert_eq!(
            *seen.lock().expect("lock"),
            vec![("/users/{id}".to_owned(), true), (LONG.to_owned(), true)]
        );
    }
}
