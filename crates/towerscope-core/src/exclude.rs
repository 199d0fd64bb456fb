//! Paths the observing layers leave alone (probe and scrape endpoints).

/// A short list of exact request paths a layer does not observe. The default is
/// `/metrics`, `/health` and `/ready`, shared by the metrics, access-log and trace layers
/// so that probes and scrapes do not show up as traffic.
///
/// ```
/// use towerscope_core::ExcludedPaths;
/// let paths = ExcludedPaths::default();
/// assert!(paths.contains("/ready"));
/// assert!(!paths.contains("/ready/extra"));
/// assert!(!ExcludedPaths::new(Vec::<String>::new()).contains("/metrics"));
/// ```
#[derive(Debug, Clone)]
pub struct ExcludedPaths(Box<[Box<str>]>);

impl ExcludedPaths {
    /// The default paths.
    ///
    /// ```
    /// use towerscope_core::ExcludedPaths;
    /// // The defaults and a Kubernetes-style probe.
    /// let paths = ExcludedPaths::new(ExcludedPaths::DEFAULT.into_iter().chain(["/livez"]));
    /// assert!(paths.contains("/metrics") && paths.contains("/livez"));
    /// ```
    pub const DEFAULT: [&'static str; 3] = ["/metrics", "/health", "/ready"];

    /// Exactly these paths.
    ///
    /// ```
    /// use towerscope_core::ExcludedPaths;
    /// let paths = ExcludedPaths::new(["/livez", "/readyz"]);
    /// assert!(paths.contains("/livez"));
    /// assert!(!paths.contains("/metrics"), "the defaults are replaced, not extended");
    /// ```
    pub fn new<I, P>(paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<str>,
    {
        Self(paths.into_iter().map(|p| Box::from(p.as_ref())).collect())
    }

    /// Whether `path` is one of them (compared byte for byte).
    ///
    /// ```
    /// let paths = towerscope_core::ExcludedPaths::default();
    /// assert!(paths.contains("/health"));
    /// // Exact bytes: no prefix, no trailing slash, no case folding.
    /// assert!(!paths.contains("/health/"));
    /// assert!(!paths.contains("/Health"));
    /// ```
    #[inline]
    pub fn contains(&self, path: &str) -> bool {
        self.0.iter().any(|p| **p == *path)
    }

    /// Whether every path of `other` is one of these: a request that gets past these gets
    /// past `other` too, so a layer that only sees such requests need not check `other`.
    ///
    /// ```
    /// use towerscope_core::ExcludedPaths;
    /// let outer = ExcludedPaths::default();
    /// assert!(outer.covers(&ExcludedPaths::new(["/metrics"])));
    /// assert!(outer.covers(&ExcludedPaths::new(Vec::<String>::new())));
    /// assert!(!outer.covers(&ExcludedPaths::new(["/metrics", "/livez"])));
    /// ```
    pub fn covers(&self, other: &ExcludedPaths) -> bool {
        other.0.iter().all(|p| self.contains(p))
    }
}

impl Default for ExcludedPaths {
    fn default() -> Self {
        Self::new(Self::DEFAULT)
    }
}
