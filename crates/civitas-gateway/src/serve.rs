//! Serving the gateway: the threads, each a single-threaded event loop with its own upstream
//! pool, the hand-over of accepted connections to them, TLS and the identity of a client
//! certificate, and graceful shutdown.

use std::{sync::Arc, time::Duration};

use civitas_ledger::Completions;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use prometheus_client::metrics::gauge::Gauge;
use tokio::{net::TcpListener, sync::watch};

use crate::{
    Caller, Gateway, THREAD_OWN, ThreadOwn, body::GatewayBody, deadline::Deadlines,
    metrics::ThreadLabels, new_upstream_client, tls,
};

/// Where a gateway event loop gets its connections.
enum Connections {
    /// It accepts them itself.
    Listener(TcpListener),
    /// [`Gateway::serve_threads`] hands them over, counted in `open` while they last.
    Handed {
        handed: tokio::sync::mpsc::UnboundedReceiver<(std::net::TcpStream, std::net::SocketAddr)>,
        open: Gauge,
    },
}

/// Counts a handed connection out of its thread's open connections when the connection ends.
struct OpenConnection(Option<Gauge>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if let Some(open) = &self.0 {
            open.dec();
        }
    }
}

impl Connections {
    /// The next connection; `None` once no more will come.
    async fn next(
        &mut self,
    ) -> Option<std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr, OpenConnection)>>
    {
        match self {
            Connections::Listener(listener) => Some(
                listener
                    .accept()
                    .await
                    .map(|(stream, peer)| (stream, peer, OpenConnection(None))),
            ),
            Connections::Handed { handed, open } => {
                let (stream, peer) = handed.recv().await?;
                // Counted by the hand-over; from here the guard counts it out.
                let counted = OpenConnection(Some(open.clone()));
                Some(tokio::net::TcpStream::from_std(stream).map(|stream| (stream, peer, counted)))
            }
        }
    }
}

impl Gateway {
    /// Serves the gateway on `listener` (with TLS when `tls` is given) until `stopped` turns
    /// true; connections in flight finish their requests. `threads` threads serve it, each a
    /// single-threaded event loop with its own pool of upstream connections: a call is read,
    /// forwarded, filtered and answered on one thread, never handed between threads (which costs
    /// more than the gateway's own work on a busy machine).
    ///
    /// Connections are accepted here, on the caller's runtime, and each is handed to the thread
    /// with the fewest open. Threads that accept from one shared socket split connections
    /// unevenly: whichever is awake takes what arrives, so a burst of new keep-alive connections
    /// can land on one thread and leave another idle for as long as they last.
    pub async fn serve_threads(
        &self,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        mut stopped: watch::Receiver<bool>,
        threads: usize,
    ) -> anyhow::Result<()> {
        let threads = threads.max(1);
        let mut finished = Vec::with_capacity(threads);
        let mut inboxes = Vec::with_capacity(threads);
        for number in 0..threads {
            let (handing, handed) = tokio::sync::mpsc::unbounded_channel();
            let open = self
                .inner
                .metrics
                .open_connections
                .get_or_create(&ThreadLabels {
                    thread: number as u32,
                })
                .clone();
            inboxes.push((handing, open.clone()));
            let connections = Connections::Handed { handed, open };
            let (gateway, tls, stopped) = (self.clone(), tls.clone(), stopped.clone());
            let (done, finished_one) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name(format!("gateway-{number}"))
                .spawn(move || {
                    let served = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(anyhow::Error::from)
                        .and_then(|runtime| {
                            runtime.block_on(async move {
                                let (completions, delivery) = Completions::new();
                                tokio::spawn(delivery);
                                let deadlines = Arc::new(Deadlines::default());
                                tokio::spawn(deadlines.clone().sweep());
                                THREAD_OWN.with(|own| {
                                    own.get_or_init(|| ThreadOwn {
                                        upstream: new_upstream_client(
                                            &gateway.inner.config.upstream_tls,
                                        ),
                                        completions,
                                        deadlines,
                                    });
                                });
                                gateway.serve_connections(connections, tls, stopped).await
                            })
                        });
                    let _ = done.send(served);
                })?;
            finished.push(finished_one);
        }
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "gateway accept failed");
                        continue;
                    }
                },
                _ = stopped.changed() => break,
            };
            // Moved to the thread's own event loop, which registers it anew.
            let mut connection = match stream.into_std() {
                Ok(stream) => (stream, peer),
                Err(error) => {
                    tracing::warn!(%error, %peer, "handing a gateway connection over failed");
                    continue;
                }
            };
            // A thread that ended (its error is reported below) takes no more.
            while let Some(position) = (0..inboxes.len()).min_by_key(|&at| inboxes[at].1.get()) {
                let (handing, open) = &inboxes[position];
                open.inc();
                match handing.send(connection) {
                    Ok(()) => break,
                    Err(returned) => {
                        open.dec();
                        connection = returned.0;
                        inboxes.swap_remove(position);
                    }
                }
            }
            if inboxes.is_empty() {
                break;
            }
        }
        drop(inboxes);
        drop(listener);
        for finished_one in finished {
            finished_one
                .await
                .map_err(|_| anyhow::anyhow!("a gateway thread ended without an answer"))??;
        }
        Ok(())
    }

    /// Serves the gateway on `listener` from the current task's runtime; see
    /// [`Gateway::serve_threads`].
    pub async fn serve(
        &self,
        listener: TcpListener,
        tls: Option<tokio_rustls::TlsAcceptor>,
        stopped: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        self.serve_connections(Connections::Listener(listener), tls, stopped)
            .await
    }

    async fn serve_connections(
        &self,
        mut connections: Connections,
        tls: Option<tokio_rustls::TlsAcceptor>,
        mut stopped: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let header_timeout = self.inner.config.header_timeout;
        loop {
            let (stream, peer, open) = tokio::select! {
                next = connections.next() => match next {
                    Some(Ok(next)) => next,
                    Some(Err(error)) => {
                        tracing::warn!(%error, "gateway accept failed");
                        continue;
                    }
                    None => break,
                },
                _ = stopped.changed() => break,
            };
            let _ = stream.set_nodelay(true);
            let gateway = self.clone();
            match &tls {
                None => {
                    let connection = http1_builder(header_timeout).serve_connection(
                        TokioIo::new(stream),
                        connection_service(gateway, Caller::Anonymous),
                    );
                    let watched = graceful.watch(connection);
                    tokio::spawn(async move {
                        let _open = open;
                        if let Err(error) = watched.await {
                            tracing::debug!(%error, "gateway connection ended");
                        }
                    });
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let _open = open;
                        let stream =
                            match tokio::time::timeout(header_timeout, acceptor.accept(stream))
                                .await
                            {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(error)) => {
                                    tracing::debug!(%error, %peer, "TLS handshake refused");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake not finished in time");
                                    return;
                                }
                            };
                        let caller = match stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|certs| certs.first())
                        {
                            Some(certificate) => match tls::identity_of(certificate) {
                                Ok(identity) => Caller::Certificate(identity),
                                Err(error) => {
                                    tracing::debug!(%error, %peer, "client certificate without identity");
                                    return;
                                }
                            },
                            None => Caller::Anonymous,
                        };
                        let connection = http1_builder(header_timeout).serve_connection(
                            TokioIo::new(stream),
                            connection_service(gateway, caller),
                        );
                        if let Err(error) = watcher.watch(connection).await {
                            tracing::debug!(%error, "gateway connection ended");
                        }
                    });
                }
            }
        }
        drop(connections);
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(Duration::from_secs(10)) => {
                tracing::warn!("gateway connections still open after 10 s; closing");
            }
        }
        Ok(())
    }
}

/// The HTTP/1 server settings of every gateway connection.
fn http1_builder(header_timeout: Duration) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    builder
}

/// The per-connection service: every request of the connection goes through [`Gateway::handle`]
/// with the connection's caller, in a task of its own on the connection's thread. A consumer
/// that goes away mid-call drops only the wait for the answer: the call still ends as every call
/// does, with its exchange record (the upstream may already have acted on it) and with its
/// circuit breaker probe settled.
fn connection_service(
    gateway: Gateway,
    caller: Caller,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<GatewayBody>,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response<GatewayBody>, std::convert::Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |request: Request<Incoming>| {
        let gateway = gateway.clone();
        let caller = caller.clone();
        async move {
            let request = request.map(|body| body.map_err(Into::into).boxed_unsync());
            let call = tokio::spawn(async move { gateway.handle(caller, request).await });
            Ok(call.await.unwrap_or_else(|error| {
                tracing::error!(%error, "a gateway call ended without an answer");
                crate::problem::Problem::new(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "the call ended without an answer",
                )
                .response(None)
            }))
        }
    })
}
