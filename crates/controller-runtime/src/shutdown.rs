//! Process shutdown signal.

/// Resolves on SIGTERM (what the kubelet sends on pod deletion) or Ctrl-C.
pub async fn signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::time::Duration;

    #[tokio::test]
    async fn sigterm_resolves_the_signal_future() {
        let handle = tokio::spawn(super::signal());
        // Give the task time to install its handler before raising the signal; without the handler
        // SIGTERM would kill the test process, so a resolved future proves the handler works.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!handle.is_finished(), "signal() must wait for a signal");
        // SAFETY: raise(3) only sends a signal to this process.
        unsafe extern "C" {
            fn raise(sig: i32) -> i32;
        }
        const SIGTERM: i32 = 15;
        assert_eq!(unsafe { raise(SIGTERM) }, 0);
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .unwrap()
            .unwrap();
    }
}
