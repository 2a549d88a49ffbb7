//! Answers to appends made from one thread, handed over together.
//!
//! The writer answers each append through a oneshot channel. A task of a runtime on another
//! thread is woken from the writer's thread by a system call (tokio writes the runtime's eventfd
//! for every such wake-up), so a group of 30 appends from a busy gateway thread cost the writer 30
//! system calls and the gateway thread as many wake-ups. Appends made through [`Completions`]
//! are answered into its mailbox instead: the writer leaves a whole group's answers there and
//! wakes the mailbox's delivery task once, and that task, on the appenders' own thread, passes
//! each answer on, which wakes the waiting tasks without a system call.

use std::ops::Range;
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, oneshot};

use super::{Result, lock};

pub(crate) type ReplySender = oneshot::Sender<Result<Range<u64>>>;

/// Answers waiting to be passed on: each with the channel its waiter listens on.
type Mail = Vec<(ReplySender, Result<Range<u64>>)>;

/// Where the writer sends an append's answer.
pub(crate) struct Reply {
    pub(crate) sender: ReplySender,
    pub(crate) mailbox: Option<Arc<Mailbox>>,
}

pub(crate) struct Mailbox {
    answers: Mutex<Mail>,
    ready: Notify,
}

/// A mailbox for the answers to appends made on one thread (one single-threaded runtime); see
/// [`crate::Ledger::append_via`]. Cloning is cheap: clones share the mailbox.
#[derive(Clone)]
pub struct Completions {
    pub(crate) mailbox: Arc<Mailbox>,
}

impl Completions {
    /// A mailbox and the task that delivers its answers. Spawn the task on the runtime whose
    /// tasks append through the mailbox; it runs until that runtime shuts down. Appends through
    /// a mailbox whose task is not running are never answered.
    pub fn new() -> (Completions, impl Future<Output = ()> + Send + 'static) {
        let mailbox = Arc::new(Mailbox {
            answers: Mutex::new(Vec::new()),
            ready: Notify::new(),
        });
        let delivery = {
            let mailbox = mailbox.clone();
            async move {
                let mut delivering = Vec::new();
                loop {
                    mailbox.ready.notified().await;
                    std::mem::swap(&mut delivering, &mut *lock(&mailbox.answers));
                    for (sender, answer) in delivering.drain(..) {
                        // A waiter that gave up no longer needs the answer.
                        let _ = sender.send(answer);
                    }
                }
            }
        };
        (Completions { mailbox }, delivery)
    }
}

impl std::fmt::Debug for Completions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Completions").finish_non_exhaustive()
    }
}

/// The writer's answers to one group, gathered per mailbox so that each mailbox is woken once.
#[derive(Default)]
pub(crate) struct Answers {
    mailed: Vec<(Arc<Mailbox>, Mail)>,
}

impl Answers {
    /// Answers an append at once, or keeps the answer for its mailbox until [`Answers::deliver`].
    pub(crate) fn answer(&mut self, reply: Reply, answer: Result<Range<u64>>) {
        let Some(mailbox) = reply.mailbox else {
            // A waiter that gave up no longer needs the answer.
            let _ = reply.sender.send(answer);
            return;
        };
        match self
            .mailed
            .iter_mut()
            .find(|(known, _)| Arc::ptr_eq(known, &mailbox))
        {
            Some((_, answers)) => answers.push((reply.sender, answer)),
            None => self.mailed.push((mailbox, vec![(reply.sender, answer)])),
        }
    }

    /// Leaves the kept answers in their mailboxes and wakes each mailbox's task once.
    pub(crate) fn deliver(&mut self) {
        for (mailbox, mut answers) in self.mailed.drain(..) {
            lock(&mailbox.answers).append(&mut answers);
            mailbox.ready.notify_one();
        }
    }
}
