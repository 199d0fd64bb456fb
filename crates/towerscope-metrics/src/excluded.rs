//! Paths the request layers leave out (probe and scrape endpoints).

/// A short list of exact paths, compared byte for byte.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExcludedPaths(Box<[Box<str>]>);

impl ExcludedPaths {
    pub(crate) const DEFAULT: [&'static str; 3] = ["/metrics", "/health", "/ready"];

    pub(crate) fn new(paths: Vec<String>) -> Self {
        Self(paths.into_iter().map(String::into_boxed_str).collect())
    }

    pub(crate) fn default_paths() -> Self {
        Self(Self::DEFAULT.iter().map(|p| Box::from(*p)).collect())
    }

    #[inline]
    pub(crate) fn contains(&self, path: &str) -> bool {
        self.0.iter().any(|p| **p == *path)
    }
}
