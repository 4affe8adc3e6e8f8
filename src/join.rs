//! Polling many futures on one task: a stage's parallel reads, scan's fetches. The runtime is
//! single-threaded, so concurrency is interleaving (the runner polls its running stages the same
//! way; only reads asked ahead of their stage are spawned, to outlive the stage that asked).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

/// Polls every future until all are done; results in input order.
pub async fn join_all<F: Future + Unpin>(mut futures: Vec<F>) -> Vec<F::Output> {
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futures.iter_mut().enumerate() {
            if outputs[i].is_none() {
                match Pin::new(f).poll(cx) {
                    Poll::Ready(v) => outputs[i] = Some(v),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|o| o.expect("every future completed")).collect()
}
