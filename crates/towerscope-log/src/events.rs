//! One-line helpers for the guide's event kinds. Each is a `tracing` event with an
//! `event_type` field, so logs can be filtered by kind.

/// A request event (`event_type="http_request"`, INFO), the guide's `log_request`, for code
/// that serves requests outside [`AccessLogLayer`](crate::AccessLogLayer) (a job runner, a
/// WebSocket message): `request_event!(method, path, status_code, duration_ms, user_id = 7)`.
///
/// ```
/// towerscope_log::request_event!("GET", "/users/1", 200u16, 12.5, user_id = "u1");
/// ```
#[macro_export]
macro_rules! request_event {
    ($method:expr, $path:expr, $status:expr, $duration_ms:expr $(, $($fields:tt)*)?) => {
        ::tracing::info!(
            event_type = "http_request",
            method = $method,
            path = $path,
            status = $status,
            duration_ms = $duration_ms,
            $($($fields)*,)?
            "{} {} {}", $method, $path, $status
        )
    };
}

/// A business event (`event_type="business_event"`, INFO): `business_event!("order_placed",
/// user_id = 42, amount = 9.5)`.
///
/// ```
/// towerscope_log::business_event!("user_registered", user_id = 7, method = "email");
/// ```
#[macro_export]
macro_rules! business_event {
    ($event:expr $(, $($fields:tt)*)?) => {
        ::tracing::info!(
            event_type = "business_event",
            event = $event,
            $($($fields)*,)?
            "Business event: {}", $event
        )
    };
}

/// A security event (`event_type="security_event"`, WARN): `security_event!("login_failed",
/// user_id = "u1", ip_address = %addr)`.
///
/// ```
/// towerscope_log::security_event!("login_failed", user_id = "u1", attempts = 3);
/// ```
#[macro_export]
macro_rules! security_event {
    ($event:expr $(, $($fields:tt)*)?) => {
        ::tracing::warn!(
            event_type = "security_event",
            event = $event,
            $($($fields)*,)?
            "Security event: {}", $event
        )
    };
}

/// An application error (`event_type="application_error"`, ERROR) with the error's type, its
/// message and its source chain (the JSON output writes `error` as
/// `{"message", "chain"}`): `app_error!(&err, order_id = 7)`.
///
/// ```
/// let err = std::io::Error::other("disk full");
/// towerscope_log::app_error!(&err, path = "/var/data");
/// ```
#[macro_export]
macro_rules! app_error {
    ($err:expr $(, $($fields:tt)*)?) => {{
        let err = $err;
        ::tracing::error!(
            event_type = "application_error",
            error_type = $crate::type_name_of(err),
            error = err as &(dyn ::std::error::Error + 'static),
            $($($fields)*,)?
            "Application error: {}", err
        )
    }};
}

/// The type name of a value, for `error_type` fields.
///
/// ```
/// let e = std::io::Error::other("x");
/// assert_eq!(towerscope_log::type_name_of(&e), "std::io::error::Error");
/// ```
pub fn type_name_of<T: ?Sized>(_: &T) -> &'static str {
    std::any::type_name::<T>()
}
