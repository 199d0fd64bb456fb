//! Alert email through a real SMTP server on 127.0.0.1 (aiosmtpd, from PyPI).

use std::time::{Duration, SystemTime};

use towerscope_alert::{
    Alert, AlertState, Delivery, EmailNotifier, Notification, Notify, Severity,
};
use towerscope_tests::{Component, eventually, free_port, require_program, wait_for_port};

fn aiosmtpd() -> Option<std::path::PathBuf> {
    let python = require_program("python3")?;
    let ok = std::process::Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let msg = "the Python package aiosmtpd is not installed; run scripts/test (it installs it)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("SKIPPED: {msg}");
        return None;
    }
    Some(python)
}

/// aiosmtpd on `port`, printing what it receives, with `extra` arguments.
async fn smtp_server(
    python: &std::path::PathBuf,
    port: u16,
    extra: &[String],
    log: std::path::PathBuf,
) -> Component {
    let mut args: Vec<String> = [
        "-u",
        "-m",
        "aiosmtpd",
        "-n",
        "-c",
        "aiosmtpd.handlers.Debugging",
        "-l",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.push(format!("127.0.0.1:{port}"));
    args.extend_from_slice(extra);
    let server = Component::start(python, &args, log);
    assert!(
        wait_for_port(port, Duration::from_secs(20)).await,
        "aiosmtpd did not start:\n{}",
        server.output()
    );
    server
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_email_arrives() {
    let Some(python) = aiosmtpd() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let server = smtp_server(&python, port, &[], dir.path().join("smtp.log")).await;

    let mail = Delivery::builder(
        EmailNotifier::new(
            "127.0.0.1",
            port,
            "Alerts <alerts@shop.example>",
            ["oncall@shop.example"],
        )
        .expect("addresses"),
    )
    .spawn();
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("alertname".to_owned(), "HighErrorRate".to_owned());
    labels.insert("severity".to_owned(), "critical".to_owned());
    let alert = Alert {
        name: "HighErrorRate".into(),
        severity: Severity::Critical,
        labels,
        annotations: [(
            "runbook_url".to_owned(),
            "https://runbooks.example/errors".to_owned(),
        )]
        .into(),
        message: "Error rate is 12.5% (threshold 5%)".into(),
        value: 12.5,
        threshold: 5.0,
        state: AlertState::Firing,
        active_since: SystemTime::now(),
        firing_since: Some(SystemTime::now()),
        silenced: false,
        fingerprint: "HighErrorRate".into(),
    };
    mail.notify(&Notification::Firing(alert.clone()));
    mail.notify(&Notification::Resolved {
        alert,
        ended: SystemTime::now(),
    });
    let both = eventually(Duration::from_secs(20), || {
        let done = mail.delivered() == 2;
        async move { done.then_some(()) }
    })
    .await;
    assert!(
        both.is_some(),
        "not delivered (failed: {}):\n{}",
        mail.failed(),
        server.output()
    );
    let log = server.output();
    for needle in [
        "Subject: [FIRING] HighErrorRate (critical)",
        "Subject: [RESOLVED] HighErrorRate (critical)",
        "From: Alerts <alerts@shop.example>",
        "To: oncall@shop.example",
        "Error rate is 12.5% (threshold 5%)",
        "runbook_url: https://runbooks.example/errors",
    ] {
        assert!(
            log.contains(needle),
            "{needle} missing from what the server received:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_email_over_starttls() {
    let Some(python) = aiosmtpd() else {
        return;
    };
    let Some(openssl) = require_program("openssl") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    // A private CA and a certificate for localhost signed by it (webpki refuses a
    // self-signed certificate used as its own root).
    let p = |name: &str| dir.path().join(name);
    let (cert, key) = (p("cert.pem"), p("key.pem"));
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    let run = |args: Vec<String>| {
        let out = std::process::Command::new(&openssl)
            .args(&args)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let s = |path: std::path::PathBuf| path.display().to_string();
    run([
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=towerscope test CA",
        "-keyout",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain([s(p("ca.key")), "-out".into(), s(p("ca.pem"))])
    .collect());
    run([
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
    ]
    .iter()
    .map(|a| a.to_string())
    .chain([s(key.clone()), "-out".into(), s(p("leaf.csr"))])
    .collect());
    run(["x509", "-req", "-days", "1", "-CAcreateserial", "-in"]
        .iter()
        .map(|a| a.to_string())
        .chain([
            s(p("leaf.csr")),
            "-CA".into(),
            s(p("ca.pem")),
            "-CAkey".into(),
            s(p("ca.key")),
            "-out".into(),
            s(cert.clone()),
            "-extfile".into(),
            s(p("ext.cnf")),
        ])
        .collect());
    let port = free_port();
    // The server refuses mail until the client has started TLS (aiosmtpd's default with a
    // certificate).
    let server = smtp_server(
        &python,
        port,
        &[
            "--tlscert".into(),
            s(cert.clone()),
            "--tlskey".into(),
            s(key.clone()),
        ],
        dir.path().join("smtp.log"),
    )
    .await;
    let pem = std::fs::read(p("ca.pem")).expect("CA certificate");
    let mail = Delivery::builder(
        EmailNotifier::new(
            "localhost",
            port,
            "alerts@shop.example",
            ["oncall@shop.example"],
        )
        .expect("addresses")
        .starttls(true)
        .root_certificate(pem),
    )
    .spawn();
    let mut labels = std::collections::BTreeMap::new();
    labels.insert("alertname".to_owned(), "DiskFull".to_owned());
    mail.notify(&Notification::Firing(Alert {
        name: "DiskFull".into(),
        severity: Severity::High,
        labels,
        annotations: Default::default(),
        message: "Disk is 97% full".into(),
        value: 97.0,
        threshold: 90.0,
        state: AlertState::Firing,
        active_since: SystemTime::now(),
        firing_since: Some(SystemTime::now()),
        silenced: false,
        fingerprint: "DiskFull".into(),
    }));
    let sent = eventually(Duration::from_secs(20), || {
        let done = mail.delivered() == 1;
        async move { done.then_some(()) }
    })
    .await;
    assert!(
        sent.is_some(),
        "not delivered over STARTTLS (failed {}, retried {}):\n{}",
        mail.failed(),
        mail.retries(),
        server.output()
    );
    assert!(
        server
            .output()
            .contains("Subject: [FIRING] DiskFull (high)"),
        "{}",
        server.output()
    );
}
