//! `shutdown_signal` installs its handlers when it is called: a `SIGTERM` that arrives
//! before the future is first polled is waited for, not the end of the process.

#[cfg(unix)]
#[tokio::test(flavor = "current_thread")]
async fn a_sigterm_before_the_first_poll_is_caught() {
    let shutdown = towerscope::shutdown_signal(); // not polled yet
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(sent.success());
    // Had the handler waited for the first poll, the default action would have ended this
    // test binary by now.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    tokio::time::timeout(std::time::Duration::from_secs(5), shutdown)
        .await
        .expect("the SIGTERM sent before the first poll completes it");
}
