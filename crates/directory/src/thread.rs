//! The member's own thread: openraft's tasks (the core, replication to each bank, the state
//! machine's worker) and the directory's outgoing messages run on a one-thread tokio runtime
//! of their own, not among the bank's HTTP handlers. A log entry passes through a dozen of
//! these tasks on its way to a commit; on a busy bank each hand-off would otherwise wait its
//! turn behind every request in the shared runtime's queues, and the log's round trip (which
//! every interbank decision waits for) would grow with the bank's load.

use std::future::Future;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// A runtime on a thread of its own that runs until this is dropped.
pub(crate) struct OwnThread {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
}

impl OwnThread {
    /// Starts the thread, named `name`.
    pub(crate) fn start(name: &str) -> std::io::Result<OwnThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name(format!("{name}-blocking"))
            .build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                // Runs every task spawned on the handle until the member is dropped; an error
                // means the sender was dropped, which is the same signal.
                let _ = runtime.block_on(stopped);
                runtime.shutdown_background();
            })?;
        Ok(OwnThread {
            handle,
            stop: Some(stop),
        })
    }

    /// Runs `future` on the thread and waits for its answer; `None` when the thread has stopped
    /// (the member is shutting down).
    pub(crate) async fn run<F>(&self, future: F) -> Option<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future).await.ok()
    }
}

impl Drop for OwnThread {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
