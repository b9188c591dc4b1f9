//! The estimator's queue, fair between workspaces: each has a queue of its own (at most
//! [`PER_TENANT`] prompts), and the threads take one prompt from each workspace in turn, so a
//! tenant flooding the estimator with huge prompts waits behind itself, not others.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Prompts waiting at most, all workspaces together.
pub const QUEUE: usize = 64;
/// Prompts one workspace may have waiting.
pub const PER_TENANT: usize = 8;

pub type Job = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Waiting {
    by_tenant: HashMap<String, VecDeque<Job>>,
    /// Tenants with prompts waiting, in the order they are served.
    turn: VecDeque<String>,
    total: usize,
    closed: bool,
}

/// The queue the threads take prompts from.
#[derive(Default)]
pub struct Fair {
    waiting: Mutex<Waiting>,
    ready: Condvar,
}

impl Fair {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `job` for `tenant`; gives it back when the tenant's queue or the whole is full.
    pub fn push(&self, tenant: &str, job: Job) -> Result<(), Job> {
        let mut waiting = self.lock();
        if waiting.closed || waiting.total >= QUEUE {
            return Err(job);
        }
        let queue = waiting.by_tenant.entry(tenant.to_owned()).or_default();
        if queue.len() >= PER_TENANT {
            return Err(job);
        }
        queue.push_back(job);
        if queue.len() == 1 {
            waiting.turn.push_back(tenant.to_owned());
        }
        waiting.total += 1;
        drop(waiting);
        self.ready.notify_one();
        Ok(())
    }

    /// The next job, taking tenants in turn; `None` once the queue is closed and empty.
    pub fn pop(&self) -> Option<Job> {
        let mut waiting = self.lock();
        loop {
            if let Some(tenant) = waiting.turn.pop_front() {
                let Waiting { by_tenant, turn, total, .. } = &mut *waiting;
                let Some(queue) = by_tenant.get_mut(&tenant) else { continue };
                let job = queue.pop_front();
                if queue.is_empty() {
                    by_tenant.remove(&tenant);
                } else {
                    turn.push_back(tenant);
                }
                if let Some(job) = job {
                    *total -= 1;
                    return Some(job);
                }
                continue;
            }
            if waiting.closed {
                return None;
            }
            waiting = self.ready.wait(waiting).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// No more jobs: the threads finish what is queued and stop.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}

/// Closes the queue when the last handle to it is dropped.
pub struct Closer(pub Arc<Fair>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn job(tx: &mpsc::Sender<&'static str>, name: &'static str) -> Job {
        let tx = tx.clone();
        Box::new(move || {
            let _ = tx.send(name);
        })
    }

    #[test]
    fn tenants_are_served_in_turn_and_each_is_bounded() {
        let fair = Fair::default();
        let (tx, rx) = mpsc::channel();
        for _ in 0..PER_TENANT {
            assert!(fair.push("flood", job(&tx, "flood")).is_ok());
        }
        assert!(fair.push("flood", job(&tx, "flood")).is_err(), "one tenant holds at most its share");
        assert!(fair.push("quiet", job(&tx, "quiet")).is_ok(), "another still gets in");
        // The quiet tenant's prompt is second, not ninth.
        for _ in 0..2 {
            fair.pop().unwrap()();
        }
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), ["flood", "quiet"]);
        fair.close();
        let mut left = 0;
        while let Some(job) = fair.pop() {
            job();
            left += 1;
        }
        assert_eq!(left, PER_TENANT - 1, "what was queued is still done after close");
        assert!(fair.push("late", job(&tx, "late")).is_err());
    }
}
