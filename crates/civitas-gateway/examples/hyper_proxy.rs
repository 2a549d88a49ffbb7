//! The floor of the gateway's HTTP stack, for `bench/gateway`: a reverse proxy on the same
//! tokio, hyper and hyper-util client as the gateway, served the same way (one single-threaded
//! runtime per core accepting from a shared listener, each with its own upstream pool), doing
//! nothing else. It collects each upstream answer whole (as the gateway does to filter JSON) and
//! sends it on.
//!
//!     hyper_proxy LISTEN_ADDRESS UPSTREAM_ADDRESS

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn forward(client: HttpClient, uri: String) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let request = Request::get(uri)
        .body(Full::new(Bytes::new()))
        .map_err(std::io::Error::other)?;
    let answer = client
        .request(request)
        .await
        .map_err(std::io::Error::other)?;
    let (parts, body) = answer.into_parts();
    let body = body.collect().await.map_err(std::io::Error::other)?;
    Ok(Response::from_parts(parts, Full::new(body.to_bytes())))
}

async fn serve(listener: std::net::TcpListener, upstream: String) -> std::io::Result<()> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(256)
        .build(connector);
    let listener = tokio::net::TcpListener::from_std(listener)?;
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let client = client.clone();
        let upstream = upstream.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let uri = format!("http://{upstream}{}", request.uri().path());
                forward(client.clone(), uri)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (arguments.next(), arguments.next()) else {
        return Err("usage: hyper_proxy LISTEN_ADDRESS UPSTREAM_ADDRESS".into());
    };
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    let threads = std::thread::available_parallelism().map_or(1, |cores| cores.get());
    let mut served = Vec::new();
    for _ in 0..threads {
        let (listener, upstream) = (listener.try_clone()?, upstream.clone());
        served.push(std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(serve(listener, upstream))
        }));
    }
    for thread in served {
        thread.join().map_err(|_| "a proxy thread panicked")??;
    }
    Ok(())
}
