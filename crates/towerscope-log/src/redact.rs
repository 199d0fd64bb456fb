//! Which field and header names are secret.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use tracing::Metadata;
use tracing::callsite::Identifier;
use tracing::field::Field;

/// The text written instead of a secret.
///
/// ```
/// use towerscope_log::{REDACTED, Redaction};
/// assert!(Redaction::default().is_secret("password"));
/// assert_eq!(REDACTED, "[REDACTED]");
/// ```
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
    /// Identifies this list for the per-thread cache (a freed list's address could be
    /// reused by another list; an id cannot).
    id: u64,
}

fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
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
    ///
    /// ```
    /// use towerscope_log::Redaction;
    /// let r = Redaction::only(["pin"]);
    /// assert!(r.is_secret("card_PIN"));
    /// assert!(!r.is_secret("password")); // the defaults are not kept
    /// ```
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
            id: next_id(),
        }
    }

    /// These patterns in addition to the current ones.
    ///
    /// ```
    /// use towerscope_log::Redaction;
    /// let r = Redaction::default().with(["ssn"]);
    /// assert!(r.is_secret("customer_ssn"));
    /// assert!(r.is_secret("password")); // the defaults are kept
    /// ```
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
            id: next_id(),
        }
    }

    /// Whether values under `name` must be masked.
    ///
    /// ```
    /// use towerscope_log::Redaction;
    /// let r = Redaction::default();
    /// // A case-insensitive substring match.
    /// assert!(r.is_secret("X-Session-Id"));
    /// assert!(r.is_secret("refresh_token"));
    /// assert!(!r.is_secret("user_id"));
    /// ```
    pub fn is_secret(&self, name: &str) -> bool {
        // Names are short; compare without allocating.
        self.patterns.iter().any(|p| contains_ignore_case(name, p))
    }

    /// Which fields of one callsite are secret: worked out once per callsite and thread
    /// (callsites are the program's `'static` metadata, a finite set, so the cache is
    /// bounded), then one bit test per field instead of a lookup per field name.
    pub(crate) fn secret_fields(&self, meta: &Metadata<'_>) -> SecretFields<'_> {
        thread_local! {
            static SEEN: RefCell<HashMap<(Identifier, u64), u64, foldhash::fast::FixedState>> =
                const { RefCell::new(HashMap::with_hasher(foldhash::fast::FixedState::with_seed(0))) };
        }
        let compute = || {
            meta.fields()
                .iter()
                .take(64)
                .enumerate()
                .filter(|(_, f)| self.is_secret(f.name()))
                .fold(0u64, |bits, (i, _)| bits | 1 << i)
        };
        // Keyed by this redaction list too: two subscribers may mask different names.
        let key = (meta.callsite(), self.id);
        let bits = SEEN.with(|seen| match seen.try_borrow_mut() {
            Ok(mut seen) => *seen.entry(key).or_insert_with(compute),
            Err(_) => compute(),
        });
        SecretFields {
            bits,
            redaction: self,
        }
    }
}

/// The secret fields of one callsite ([`Redaction::secret_fields`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SecretFields<'a> {
    bits: u64,
    redaction: &'a Redaction,
}

impl SecretFields<'_> {
    /// Whether `field` (of this callsite) is to be masked.
    pub(crate) fn contains(&self, field: &Field) -> bool {
        match field.index() {
            i if i < 64 => self.bits >> i & 1 == 1,
            _ => self.redaction.is_secret(field.name()),
        }
    }
}

fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}
