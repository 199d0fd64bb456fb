//! `--traffic`: background load moves the request metrics on several routes, including
//! the failing ones, and the demo keeps serving.

use std::time::{Duration, Instant};

use towerscope_demo::{Config, Demo};
use towerscope_metrics::Format;

fn total(text: &str, route: &str) -> u64 {
    text.lines()
        .filter(|l| {
            l.starts_with("http_server_requests_total{")
                && l.contains(&format!("http_route=\"{route}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_traffic_reaches_every_kind_of_route() {
    let demo = Demo::new(Config::default()).await.expect("demo");
    let metrics = demo.metrics().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(demo.serve(listener, async {
        let _ = stopped.await;
    }));
    let traffic = towerscope_demo::spawn_traffic(addr, 400.0);

    let routes = ["/users/{id}", "/orders", "/login", "/error"];
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = metrics.encode(Format::Prometheus);
        // The traffic also asks for users that do not exist: wait for their 404 too.
        if routes.iter().all(|r| total(&text, r) >= 3)
            && text.contains("http_response_status_code=\"404\"")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "traffic did not reach {routes:?}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    traffic.abort();
    let text = metrics.encode(Format::Prometheus);
    assert!(
        text.contains("http_response_status_code=\"404\""),
        "missing users: {text}"
    );
    assert!(text.contains("app_order_value_dollars_count"), "{text}");
    stop.send(()).expect("serving");
    server.await.expect("joined").expect("served");
}
