//! `shutdown_signal` installs its handlers when it is called: a `SIGTERM` that arrives
//! before the future is first polled is waited for, not the end of the process.
//!
//! One test, its cases one after the other: a signal goes to the whole process, so two
//! tests sending one at once would answer each other's.

/// Sends this process `SIGTERM`.
#[cfg(unix)]
fn terminate_self() {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(sent.success());
}

#[cfg(unix)]
#[test]
fn handlers_are_installed_at_the_call_inside_a_runtime_and_at_the_first_poll_outside() {
    use std::time::Duration;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    // Inside a runtime: installed at the call. Had the handler waited for the first poll,
    // the default action would have ended this test binary.
    runtime.block_on(async {
        let shutdown = towerscope::shutdown_signal(); // not polled yet
        terminate_self();
        tokio::time::sleep(Duration::from_millis(200)).await;
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .expect("the SIGTERM sent before the first poll completes it");
    });

    // Outside one (a future built before the runtime that runs it): installed at the first
    // poll instead, without a panic for want of a reactor.
    let shutdown = towerscope::shutdown_signal();
    runtime.block_on(async move {
        let mut shutdown = std::pin::pin!(shutdown);
        // The first poll installs the handlers; no new signal has come yet.
        let early = tokio::time::timeout(Duration::from_millis(50), shutdown.as_mut()).await;
        assert!(early.is_err(), "completed by the earlier signal");
        terminate_self();
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .expect("the SIGTERM completes it");
    });
}
