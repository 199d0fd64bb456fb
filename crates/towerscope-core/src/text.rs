//! A value's text, whatever its formatting does.

use std::fmt::{self, Write as _};

/// `value`'s `Display` text, as far as it got. A `Display` that returns an error (one that
/// passes on an inner formatter's failure) makes `to_string()` and `format!` panic; logging
/// and tracing code calls this instead, so a user's type costs its own text, never the
/// request.
///
/// ```
/// use std::fmt;
/// struct Broken;
/// impl fmt::Display for Broken {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         f.write_str("half")?;
///         Err(fmt::Error)
///     }
/// }
/// assert_eq!(towerscope_core::display_text(&Broken), "half");
/// assert_eq!(towerscope_core::display_text(&42), "42");
/// ```
pub fn display_text(value: &(impl fmt::Display + ?Sized)) -> String {
    let mut text = String::new();
    let _ = write!(text, "{value}");
    text
}

/// `value`'s `Debug` text, as far as it got: [`display_text`] for `Debug`.
///
/// ```
/// use std::fmt;
/// struct Broken;
/// impl fmt::Debug for Broken {
///     fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
///         Err(fmt::Error)
///     }
/// }
/// assert_eq!(towerscope_core::debug_text(&Broken), "");
/// assert_eq!(towerscope_core::debug_text(&Some(1)), "Some(1)");
/// ```
pub fn debug_text(value: &(impl fmt::Debug + ?Sized)) -> String {
    let mut text = String::new();
    let _ = write!(text, "{value:?}");
    text
}
