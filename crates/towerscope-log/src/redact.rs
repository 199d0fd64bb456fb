//! Which field and header names are secret.

use std::sync::Arc;

/// The text written instead of a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Names whose values are masked wherever they appear: a field (of an event or a span) or a
/// header is secret when its lower-cased name contains one of the patterns.
///
/// Default patterns: `password`, `passwd`, `secret`, `token`, `authorization`, `api_key`,
/// `apikey`, `x-api-key`, `cookie`, `session`, `credential`, `private_key`.
///
/// ```
/// use towerscope_log::Redaction;
/// let r = Redaction::default().with(["card_number"]);
/// assert!(r.is_secret("user_password"));
/// assert!(r.is_secret("Authorization"));
/// assert!(r.is_secret("card_number"));
/// assert!(!r.is_secret("user_id"));
/// ```
#[derive(Debug, Clone)]
pub struct Redaction {
    patterns: Arc<[Box<str>]>,
}

impl Default for Redaction {
    fn default() -> Self {
        Self::only([
            "password",
            "passwd",
            "secret",
            "token",
            "authorization",
            "api_key",
            "apikey",
            "x-api-key",
            "cookie",
            "session",
            "credential",
            "private_key",
        ])
    }
}

impl Redaction {
    /// Exactly these patterns (case-insensitive substrings).
    pub fn only<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self {
            patterns: patterns
                .into_iter()
                .map(|p| p.as_ref().to_ascii_lowercase().into_boxed_str())
                .collect(),
        }
    }

    /// These patterns in addition to the current ones.
    pub fn with<I, S>(self, more: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut all: Vec<Box<str>> = self.patterns.iter().cloned().collect();
        all.extend(
            more.into_iter()
                .map(|p| p.as_ref().to_ascii_lowercase().into_boxed_str()),
        );
        Self {
            patterns: all.into(),
        }
    }

    /// Whether values under `name` must be masked.
    pub fn is_secret(&self, name: &str) -> bool {
        // Names are short; compare without allocating.
        self.patterns.iter().any(|p| contains_ignore_case(name, p))
    }
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}
