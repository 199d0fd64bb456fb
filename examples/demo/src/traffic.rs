//! Background traffic against the demo (`--traffic`), so the dashboard, the metrics and
//! the alerts have something to show on a fresh start.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// One kind of request the simulated users send, with its share of the traffic.
#[derive(Debug, Clone, Copy)]
enum Action {
    ViewUser,
    MissingUser,
    ListOrders,
    PlaceOrder,
    Register,
    Login,
    WrongPassword,
    Slow,
    Error,
    Panic,
}

/// Relative weights: mostly reads, some writes, a little of everything that goes wrong.
const MIX: [(Action, u32); 10] = [
    (Action::ViewUser, 40),
    (Action::MissingUser, 5),
    (Action::ListOrders, 20),
    (Action::PlaceOrder, 12),
    (Action::Register, 4),
    (Action::Login, 5),
    (Action::WrongPassword, 3),
    (Action::Slow, 6),
    (Action::Error, 4),
    (Action::Panic, 1),
];

fn pick(rng: &mut fastrand::Rng) -> Action {
    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
    let mut n = rng.u32(0..total);
    for (action, weight) in MIX {
        if n < weight {
            return action;
        }
        n -= weight;
    }
    Action::ViewUser
}

/// The request for `action`: method, path, body, and a signed-in user for some.
fn request(action: Action, rng: &mut fastrand::Rng) -> (&'static str, String, Option<String>) {
    match action {
        Action::ViewUser => ("GET", format!("/users/{}", rng.u32(1..=3)), None),
        Action::MissingUser => ("GET", format!("/users/{}", rng.u32(1000..2000)), None),
        Action::ListOrders => ("GET", "/orders".into(), None),
        Action::PlaceOrder => {
            // Order values spread over the guide's buckets (5 … 1000 dollars).
            let amount = (rng.f64().powi(3) * 900.0 + 5.0).round();
            (
                "POST",
                "/orders".into(),
                Some(format!(
                    r#"{{"user_id": {}, "amount": {amount}}}"#,
                    rng.u32(1..=3)
                )),
            )
        }
        Action::Register => (
            "POST",
            "/users".into(),
            Some(format!(r#"{{"name": "visitor-{}"}}"#, rng.u32(..))),
        ),
        Action::Login => (
            "POST",
            "/login".into(),
            Some(r#"{"user": "ada", "password": "correct-horse"}"#.into()),
        ),
        Action::WrongPassword => (
            "POST",
            "/login".into(),
            Some(r#"{"user": "ada", "password": "guess"}"#.into()),
        ),
        Action::Slow => ("GET", "/slow".into(), None),
        Action::Error => ("GET", "/error".into(), None),
        Action::Panic => ("GET", "/panic".into(), None),
    }
}

/// Sends about `per_second` requests a second to the demo at `addr`, with random
/// (exponential) gaps like independent users, until the returned handle is aborted or
/// dropped with the runtime. Requests are sent concurrently; at most 64 are in flight.
///
/// ```no_run
/// # async fn run() {
/// let traffic = towerscope_demo::spawn_traffic("127.0.0.1:8080".parse().unwrap(), 10.0);
/// # traffic.abort();
/// # }
/// ```
pub fn spawn_traffic(addr: SocketAddr, per_second: f64) -> tokio::task::JoinHandle<()> {
    let per_second = if per_second.is_finite() {
        per_second.clamp(0.1, 10_000.0)
    } else {
        10.0
    };
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
    tokio::spawn(async move {
        let mut rng = fastrand::Rng::new();
        loop {
            // Exponential inter-arrival times: a Poisson process of `per_second`.
            let gap = -(1.0 - rng.f64()).ln() / per_second;
            tokio::time::sleep(Duration::from_secs_f64(gap.min(10.0))).await;
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                continue; // the demo is slower than the load: skip rather than queue
            };
            let (method, path, body) = request(pick(&mut rng), &mut rng);
            let mut req = http::Request::builder()
                .method(method)
                .uri(format!("http://{addr}{path}"))
                .header("content-type", "application/json");
            if rng.u8(..) < 64 {
                // A quarter of the visitors are signed in.
                req = req.header(
                    "authorization",
                    format!("Bearer demo-user-{}", rng.u32(1..=3)),
                );
            }
            let Ok(req) = req.body(Full::new(Bytes::from(body.unwrap_or_default()))) else {
                continue;
            };
            let client = client.clone();
            tokio::spawn(async move {
                if let Ok(resp) = client.request(req).await {
                    let _ = resp.into_body().collect().await;
                }
                drop(permit);
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_reaches_every_action() {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            seen.insert(format!("{:?}", pick(&mut rng)));
        }
        assert_eq!(seen.len(), MIX.len());
    }

    #[test]
    fn order_amounts_stay_in_the_guide_buckets() {
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..1000 {
            let (_, _, body) = request(Action::PlaceOrder, &mut rng);
            let body: serde_json::Value =
                serde_json::from_str(&body.expect("a body")).expect("json");
            let amount = body["amount"].as_f64().expect("amount");
            assert!((5.0..=905.0).contains(&amount), "{amount}");
        }
    }
}
