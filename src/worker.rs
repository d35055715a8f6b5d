//! Background workers' common loop: a pass over a queue, again at once while there is work,
//! else a wait until the worker is woken, its next item comes due or a while passes; the
//! loop ends when shutdown is asked for (a pass in progress finishes first). Uses nothing
//! else in Herald.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What one pass found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// It did some work: there may be more, look again at once.
    Busy,
    /// Nothing to do: look again when woken, or after this long.
    Idle(Duration),
}

/// How long a worker waits after a failed pass before it tries again (unless woken).
const AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Runs `pass` until `shutdown`, as the module describes. A failed pass is logged as `what`
/// failing and retried after a few seconds.
pub async fn run<F, Fut>(what: &str, wake: &Notify, shutdown: &CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Pass>>,
{
    while !shutdown.is_cancelled() {
        let wait = match pass().await {
            Ok(Pass::Busy) => continue,
            Ok(Pass::Idle(wait)) => wait,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "{what} failed");
                AFTER_FAILURE
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn busy_passes_repeat_at_once_and_idle_ones_wait_to_be_woken() {
        let passes = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(Notify::new());
        let shutdown = CancellationToken::new();
        let worker = {
            let (passes, wake, shutdown) = (passes.clone(), wake.clone(), shutdown.clone());
            tokio::spawn(async move {
                run("test pass", &wake, &shutdown, || {
                    let n = passes.fetch_add(1, Ordering::SeqCst);
                    async move {
                        Ok(if n < 3 {
                            Pass::Busy
                        } else {
                            Pass::Idle(Duration::from_secs(3600))
                        })
                    }
                })
                .await
            })
        };
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 4, "three busy passes, then one idle");
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(passes.load(Ordering::SeqCst), 5, "woken: one more pass");
        shutdown.cancel();
        worker.await.unwrap();
    }
}
