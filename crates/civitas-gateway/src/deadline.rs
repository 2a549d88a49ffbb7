//! Time limits for upstream calls without a tokio timer for each call.
//!
//! tokio's timer driver writes to its runtime's eventfd whenever a timer is registered while no
//! earlier timer is pending, even from the runtime's own thread. A gateway thread's calls spend
//! most of their time waiting for the ledger, not for the upstream, so its timer wheel is often
//! empty and a `tokio::time::timeout` around each upstream call cost one system call for every
//! other call. A gateway thread instead keeps its calls' deadlines in one list, and one sweeper
//! task, which ticks only while the list is not empty, ends the calls whose deadline has passed.
//! A deadline fires at most one tick late.

use std::collections::BTreeMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// How often the sweeper looks for passed deadlines while calls are waiting.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// A call's time limit passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Elapsed;

/// One thread's waiting deadlines (shared through an `Arc` only because the calls' futures must
/// be `Send`; every user is on the one thread).
#[derive(Default)]
pub(crate) struct Deadlines {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Waiting deadlines by (when, sequence number), with the waker of the call waiting on each.
    waiting: BTreeMap<(Instant, u64), Option<Waker>>,
    next_number: u64,
    /// The sweeper, while it waits for the first deadline.
    sweeper: Option<Waker>,
}

impl Deadlines {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `future` until it finishes or `limit` has passed, whichever comes first.
    pub(crate) async fn within<F: Future>(
        self: &Arc<Self>,
        limit: Duration,
        future: F,
    ) -> Result<F::Output, Elapsed> {
        let expiry = self.register(Instant::now() + limit);
        tokio::select! {
            biased;
            output = future => Ok(output),
            () = expiry => Err(Elapsed),
        }
    }

    fn register(self: &Arc<Self>, at: Instant) -> Expiry {
        let mut state = self.state();
        let key = (at, state.next_number);
        state.next_number += 1;
        state.waiting.insert(key, None);
        if let Some(sweeper) = state.sweeper.take() {
            sweeper.wake();
        }
        Expiry {
            deadlines: self.clone(),
            key,
        }
    }

    /// Ends every call whose deadline is not after `now`.
    fn expire(&self, now: Instant) {
        let mut wakers = Vec::new();
        {
            let mut state = self.state();
            while let Some(entry) = state.waiting.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                wakers.extend(entry.remove());
            }
        }
        for waker in wakers {
            waker.wake();
        }
    }

    /// Runs for as long as the thread serves: idle while no call waits, otherwise ticking every
    /// [`TICK`] and ending the calls whose deadline has passed.
    pub(crate) async fn sweep(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(TICK);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            poll_fn(|cx| {
                let mut state = self.state();
                if state.waiting.is_empty() {
                    state.sweeper = Some(cx.waker().clone());
                    Poll::Pending
                } else {
                    Poll::Ready(())
                }
            })
            .await;
            ticks.reset();
            loop {
                ticks.tick().await;
                self.expire(Instant::now());
                if self.state().waiting.is_empty() {
                    break;
                }
            }
        }
    }
}

/// Finishes when its deadline has passed; dropping it withdraws the deadline.
struct Expiry {
    deadlines: Arc<Deadlines>,
    key: (Instant, u64),
}

impl Future for Expiry {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.deadlines.state();
        match state.waiting.get_mut(&self.key) {
            // The sweeper removed it: the deadline passed.
            None => Poll::Ready(()),
            Some(waker) => {
                if !waker
                    .as_ref()
                    .is_some_and(|known| known.will_wake(cx.waker()))
                {
                    *waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl Drop for Expiry {
    fn drop(&mut self) {
        self.deadlines.state().waiting.remove(&self.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_call_that_finishes_in_time_keeps_its_output_and_leaves_no_deadline() {
        runtime().block_on(async {
            let deadlines = Arc::new(Deadlines::default());
            tokio::spawn(deadlines.clone().sweep());
            let output = deadlines
                .within(Duration::from_secs(5), async {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    7
                })
                .await;
            assert_eq!(output, Ok(7));
            assert!(deadlines.state().waiting.is_empty());
        });
    }

    #[test]
    fn a_call_past_its_limit_ends_within_a_tick_and_the_sweeper_goes_idle() {
        runtime().block_on(async {
            let deadlines = Arc::new(Deadlines::default());
            tokio::spawn(deadlines.clone().sweep());
            for limit in [Duration::from_millis(30), Duration::from_millis(60)] {
                let started = Instant::now();
                let output = deadlines.within(limit, std::future::pending::<()>()).await;
                let took = started.elapsed();
                assert_eq!(output, Err(Elapsed));
                assert!(took >= limit, "{took:?}");
                // A tick late at most, with room for a slow machine.
                assert!(took < limit + TICK + Duration::from_millis(50), "{took:?}");
                assert!(deadlines.state().waiting.is_empty());
            }
            // With nothing waiting, the sweeper waits to be woken instead of ticking.
            tokio::time::sleep(TICK * 3).await;
            assert!(deadlines.state().sweeper.is_some());
        });
    }

    #[test]
    fn calls_with_different_limits_each_end_at_their_own() {
        runtime().block_on(async {
            let deadlines = Arc::new(Deadlines::default());
            tokio::spawn(deadlines.clone().sweep());
            let started = Instant::now();
            let long = deadlines.within(Duration::from_millis(300), async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                "long"
            });
            let short = deadlines.within(Duration::from_millis(40), std::future::pending::<()>());
            let (long, short) = tokio::join!(long, async {
                let output = short.await;
                (output, started.elapsed())
            });
            assert_eq!(long, Ok("long"));
            assert_eq!(short.0, Err(Elapsed));
            assert!(short.1 < Duration::from_millis(100), "{:?}", short.1);
        });
    }
}
