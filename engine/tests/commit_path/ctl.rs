//! A log driver whose sleeps and wakes are the test's own (a condition variable), its durable
//! writes real: the test sees when the log thread sleeps and counts wakes and writes. Shared by
//! the modules that need no more than that.

use std::io;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use ringlog_db::io::{LogDriver, SyncStrategy, VFile, Vfs, Waker};

/// Upper bound of liveness waits: only a hang reaches it.
pub const LIVENESS: Duration = Duration::from_secs(10);

#[derive(Default)]
pub struct Ctl {
    pub st: Mutex<CtlState>,
    pub cv: Condvar,
}

#[derive(Default)]
pub struct CtlState {
    /// The log thread is inside `LogDriver::wait`.
    pub in_wait: bool,
    /// A wake arrived that the log thread has not consumed yet.
    pub woken: bool,
    /// Wakes issued so far.
    pub wakes: usize,
    /// Durable writes completed so far.
    pub writes: usize,
}

impl Ctl {
    pub fn wait_until(&self, what: &str, cond: impl Fn(&CtlState) -> bool) {
        let start = Instant::now();
        let mut s = self.st.lock().unwrap();
        while !cond(&s) {
            let Some(left) = LIVENESS.checked_sub(start.elapsed()) else {
                // Not holding the lock: the engine's threads go on using it.
                drop(s);
                panic!("{what}: not after {LIVENESS:?} (hang?)");
            };
            s = self.cv.wait_timeout(s, left).unwrap().0;
        }
    }
}

pub struct CtlWaker(pub Arc<Ctl>);

impl Waker for CtlWaker {
    fn wake(&self) {
        let mut s = self.0.st.lock().unwrap();
        s.woken = true;
        s.wakes += 1;
        self.0.cv.notify_all();
    }
}

/// A real driver's durable writes; sleeps and wakes of the test's own.
pub struct CtlDriver {
    pub inner: Box<dyn LogDriver>,
    pub ctl: Arc<Ctl>,
}

impl LogDriver for CtlDriver {
    fn write_durable(
        &mut self,
        file: &dyn VFile,
        offset: u64,
        buf: &[u8],
        strategy: SyncStrategy,
    ) -> io::Result<()> {
        let r = self.inner.write_durable(file, offset, buf, strategy);
        self.ctl.st.lock().unwrap().writes += 1;
        self.ctl.cv.notify_all();
        r
    }
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let until = timeout.map(|t| Instant::now() + t);
        let mut s = self.ctl.st.lock().unwrap();
        s.in_wait = true;
        self.ctl.cv.notify_all();
        while !s.woken {
            match until {
                None => s = self.ctl.cv.wait(s).unwrap(),
                Some(u) => {
                    let now = Instant::now();
                    if now >= u {
                        break;
                    }
                    s = self.ctl.cv.wait_timeout(s, u - now).unwrap().0;
                }
            }
        }
        s.woken = false;
        s.in_wait = false;
        self.ctl.cv.notify_all();
        Ok(())
    }
    fn waker(&self) -> Arc<dyn Waker> {
        Arc::new(CtlWaker(self.ctl.clone()))
    }
}

pub struct CtlHooks(pub Arc<Ctl>);

impl Hooks for CtlHooks {
    fn log_driver(&self, inner: &dyn Vfs) -> io::Result<Box<dyn LogDriver>> {
        Ok(Box::new(CtlDriver {
            inner: inner.log_driver()?,
            ctl: self.0.clone(),
        }))
    }
}
