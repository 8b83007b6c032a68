//! A pipelined log driver that runs on both I/O paths: each submission is written at once
//! through the real driver, and its completion handed back by the next `complete`. It counts
//! submissions, can fail one of them, and tells the test when the log thread sleeps in its idle
//! loop (`LogDriver::wait`).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ringlog_db::io::{Completion, LogDriver, Submission, SyncStrategy, VFile, Vfs, Waker};

/// What the test sees of a [`SyncPipe`].
#[derive(Default)]
pub struct Seen {
    /// Submissions so far (the failed one included).
    pub submits: AtomicUsize,
    /// The log thread is inside `LogDriver::wait` (the idle loop's sleep).
    pub idle: AtomicBool,
}

/// The driver: two rounds in flight at most.
pub struct SyncPipe {
    inner: Box<dyn LogDriver>,
    seen: Arc<Seen>,
    /// The submission (numbered from 1) that fails, if any.
    fail_at: Option<usize>,
    done: VecDeque<Completion>,
}

impl SyncPipe {
    /// `inner`'s log driver, pipelined, reporting to `seen`; submission `fail_at` fails.
    pub fn of(
        inner: &dyn Vfs,
        seen: &Arc<Seen>,
        fail_at: Option<usize>,
    ) -> io::Result<Box<dyn LogDriver>> {
        Ok(Box::new(SyncPipe {
            inner: inner.log_driver()?,
            seen: seen.clone(),
            fail_at,
            done: VecDeque::new(),
        }))
    }
}

impl LogDriver for SyncPipe {
    fn write_durable(
        &mut self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        self.inner.write_durable(file, offset, buf, strategy)
    }
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.seen.idle.store(true, Ordering::SeqCst);
        let r = self.inner.wait(timeout);
        self.seen.idle.store(false, Ordering::SeqCst);
        r
    }
    fn waker(&self) -> Arc<dyn Waker> {
        self.inner.waker()
    }
    fn max_in_flight(&self) -> usize {
        2
    }
    fn submit(&mut self, s: Submission) -> io::Result<()> {
        let n = self.seen.submits.fetch_add(1, Ordering::SeqCst) + 1;
        if self.fail_at == Some(n) {
            return Err(io::Error::other(format!("submission {n} fails (test)")));
        }
        let result = self
            .inner
            .write_durable(&*s.file, s.offset, s.buf.as_slice(), s.strategy);
        self.done.push_back(Completion {
            token: s.token,
            buf: s.buf,
            result,
        });
        Ok(())
    }
    fn complete(
        &mut self,
        done: &mut Vec<Completion>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        if self.done.is_empty() {
            return self.inner.wait(timeout);
        }
        done.extend(self.done.drain(..));
        Ok(())
    }
}
