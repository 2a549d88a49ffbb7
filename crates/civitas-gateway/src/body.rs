//! Bodies that stream through the gateway while being counted and hashed, so that the ledger can
//! record the size and SHA-256 of what crossed without holding it in memory.

use std::{
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Body, Frame, SizeHint};
use sha2::{Digest, Sha256};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The body type of everything the gateway sends and receives.
pub type GatewayBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> GatewayBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> GatewayBody {
    full(Bytes::new())
}

/// Size and digest of a body, final once `finished`.
#[derive(Debug, Clone)]
pub struct Tally {
    pub bytes: u64,
    pub sha256: [u8; 32],
    pub finished: bool,
}

#[derive(Debug)]
struct Shared {
    bytes: u64,
    hasher: Option<Sha256>,
    sha256: [u8; 32],
}

/// A handle on a [`TallyBody`]'s count and digest.
#[derive(Debug, Clone)]
pub struct TallyHandle {
    shared: Arc<Mutex<Shared>>,
    finished: Arc<tokio::sync::watch::Sender<bool>>,
}

impl TallyHandle {
    pub fn current(&self) -> Tally {
        let shared = self.shared.lock().expect("tally lock");
        let finished = *self.finished.borrow();
        let sha256 = match (&shared.hasher, finished) {
            (_, true) => shared.sha256,
            (Some(hasher), false) => hasher.clone().finalize().into(),
            (None, false) => shared.sha256,
        };
        Tally {
            bytes: shared.bytes,
            sha256,
            finished,
        }
    }

    /// Waits until the body has been read to its end (or dropped).
    pub async fn finished(&self) -> Tally {
        let mut receiver = self.finished.subscribe();
        let _ = receiver.wait_for(|finished| *finished).await;
        self.current()
    }
}

/// Wraps a body, counting and hashing every data frame that passes.
pub struct TallyBody<B> {
    inner: B,
    handle: TallyHandle,
}

impl<B> TallyBody<B> {
    pub fn new(inner: B) -> (TallyBody<B>, TallyHandle) {
        let handle = TallyHandle {
            shared: Arc::new(Mutex::new(Shared {
                bytes: 0,
                hasher: Some(Sha256::new()),
                sha256: [0; 32],
            })),
            finished: Arc::new(tokio::sync::watch::channel(false).0),
        };
        (
            TallyBody {
                inner,
                handle: handle.clone(),
            },
            handle,
        )
    }

    fn finish(&self) {
        let mut shared = self.handle.shared.lock().expect("tally lock");
        if let Some(hasher) = shared.hasher.take() {
            shared.sha256 = hasher.finalize().into();
        }
        drop(shared);
        self.handle.finished.send_replace(true);
    }
}

impl<B> Drop for TallyBody<B> {
    fn drop(&mut self) {
        // A body dropped before its end (the client went away) still finishes its tally, so that
        // whoever waits for it is not left waiting.
        if !*self.handle.finished.borrow() {
            self.finish();
        }
    }
}

impl<B> Body for TallyBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.inner).poll_frame(context) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let mut shared = self.handle.shared.lock().expect("tally lock");
                    shared.bytes += data.len() as u64;
                    if let Some(hasher) = shared.hasher.as_mut() {
                        hasher.update(data);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                self.finish();
                Poll::Ready(Some(Err(error.into())))
            }
            Poll::Ready(None) => {
                self.finish();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// SHA-256 of a whole buffer.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
