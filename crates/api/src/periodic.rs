//! Background tasks that run a pass every so often until the server shuts down, backing off after a
//! failed pass.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// The wait after a first failed pass; it doubles after each further failure, up to the task's period.
const FIRST_RETRY: Duration = Duration::from_secs(60);

/// Runs `pass` now and then every `period` until `shutdown` turns true. A pass answers `Ok(true)` when it
/// ran (it logs what it did) and `Ok(false)` when another process holds the task's lock; a failed pass is
/// logged and tried again after [`FIRST_RETRY`], then twice as long each time, never longer than `period`.
pub async fn every<F, Fut, E>(task: &'static str, period: Duration, mut shutdown: watch::Receiver<bool>, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, E>>,
    E: Display,
{
    let mut retry = FIRST_RETRY.min(period);
    loop {
        let wait = match pass().await {
            Ok(ran) => {
                if !ran {
                    tracing::debug!(task, "pass skipped: another process holds the lock");
                }
                retry = FIRST_RETRY.min(period);
                period
            }
            Err(e) => {
                tracing::warn!(task, error = %e, retry_in_s = retry.as_secs(), "pass failed");
                let wait = retry;
                retry = (retry * 2).min(period);
                wait
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    tracing::info!(task, "stopped");
}
