//! The pool's rules against a local hyper server that records, per request, which of
//! its connections carried it.

use super::*;
use crate::net::{read_small, ConnectionGauge, Timeouts};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use std::sync::atomic::AtomicU64;

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    /// The server's connection number, from 1.
    conn: u64,
    method: Method,
    path: String,
    /// The request's `Connection` header.
    connection: Option<String>,
}

/// A local HTTP/1.1 server: `GET /bytes/N` answers N bytes, `/close/N` the same with
/// `Connection: close`; it counts connections accepted and ended.
struct Server {
    url: Url,
    seen: Arc<Mutex<Vec<Seen>>>,
    accepted: Arc<AtomicU64>,
    ended: Arc<AtomicU64>,
}

impl Server {
    async fn start() -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicU64::new(0));
        let ended = Arc::new(AtomicU64::new(0));
        let (s, a, e) = (seen.clone(), accepted.clone(), ended.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let conn = a.fetch_add(1, Ordering::SeqCst) + 1;
                let (s, e) = (s.clone(), e.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let path = req.uri().path().to_string();
                        lock(&s).push(Seen {
                            conn,
                            method: req.method().clone(),
                            path: path.clone(),
                            connection: req
                                .headers()
                                .get(http::header::CONNECTION)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string),
                        });
                        let (close, n) = match path.rsplit_once('/') {
                            Some((head, n)) => (head == "/close", n.parse().unwrap_or(0)),
                            None => (false, 0),
                        };
                        let mut response =
                            http::Response::new(Full::new(Bytes::from(vec![b'x'; n])));
                        if close {
                            response.headers_mut().insert(
                                http::header::CONNECTION,
                                HeaderValue::from_static("close"),
                            );
                        }
                        std::future::ready(Ok::<_, std::convert::Infallible>(response))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                    e.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Server {
            url,
            seen,
            accepted,
            ended,
        }
    }

    fn url(&self, path: &str) -> Url {
        self.url.join(path).unwrap()
    }

    fn seen(&self) -> Vec<Seen> {
        lock(&self.seen).clone()
    }

    /// The server's connection number of each request, in order.
    fn conns(&self) -> Vec<u64> {
        self.seen().iter().map(|s| s.conn).collect()
    }

    fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::SeqCst)
    }

    fn ended(&self) -> u64 {
        self.ended.load(Ordering::SeqCst)
    }
}

fn transport(model: ConnectionModel, https_probe: HttpsProbe) -> Transport {
    Transport {
        timeouts: Timeouts {
            connect: Duration::from_secs(5),
            response: Duration::from_secs(5),
            stall: Some(Duration::from_secs(5)),
        },
        gauge: Arc::new(ConnectionGauge::default()),
        tls: None,
        loopback_source: None,
        read_buffer: crate::net::FULL_SPEED_READ_BUFFER,
        connections: ConnectionPolicy { model, https_probe },
        pool: None,
    }
    .for_pull()
}

fn keep_alive() -> ConnectionModel {
    ConnectionModel::KeepAlive(KeepAlive::GO)
}

fn pool(t: &Transport) -> &Arc<Pool> {
    t.pool.as_ref().expect("a pull's transport has a pool")
}

async fn get(t: &Transport, url: &Url) -> Exchange {
    crate::net::send(Method::GET, url, HeaderMap::new(), t)
        .await
        .expect("the local server answers")
}

/// GET read to its end.
async fn fetch(t: &Transport, url: &Url) -> Bytes {
    let ex = get(t, url).await;
    read_small(ex.body, 16 << 20, None).await.unwrap()
}

/// Polls `what` every 10 ms for at most 5 s.
async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "waited 5 s for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn kept_alive_requests_share_one_connection_once_each_has_ended() {
    let server = Server::start().await;
    let t = transport(keep_alive(), HttpsProbe::Off);
    for _ in 0..3 {
        assert_eq!(fetch(&t, &server.url("/bytes/100")).await.len(), 100);
    }
    assert_eq!(server.conns(), [1, 1, 1]);
    let tally = pool(&t).take_tally();
    assert_eq!(
        (tally.opened, tally.requests, tally.most_requests),
        (1, 3, 3)
    );
    assert_eq!(t.gauge.current(), 1, "the idle connection is still open");
}

#[tokio::test]
async fn a_connection_is_not_reused_while_its_response_is_unread() {
    let server = Server::start().await;
    let t = transport(keep_alive(), HttpsProbe::Off);
    // A body larger than the socket buffers: it cannot have ended on the wire either.
    let first = get(&t, &server.url("/bytes/8388608")).await;
    fetch(&t, &server.url("/bytes/10")).await;
    assert_eq!(server.conns(), [1, 2], "the busy connection was not used");
    let body = read_small(first.body, 16 << 20, None).await.unwrap();
    assert_eq!(body.len(), 8 << 20);
    // Both idle now; the most recently freed one serves next (Go takes the newest).
    fetch(&t, &server.url("/bytes/10")).await;
    assert_eq!(server.conns(), [1, 2, 1]);
    assert_eq!(pool(&t).take_tally().opened, 2);
}

#[tokio::test]
async fn a_response_dropped_before_its_end_closes_its_connection() {
    let server = Server::start().await;
    let t = transport(keep_alive(), HttpsProbe::Off);
    // Small enough to be whole in hyper's buffer: hyper alone would drain and keep it.
    let ex = get(&t, &server.url("/bytes/300")).await;
    drop(ex);
    wait_for("the dropped response's connection to end", || {
        server.ended() == 1
    })
    .await;
    // A big one, part read.
    let mut ex = get(&t, &server.url("/bytes/8388608")).await;
    let _ = ex.body.frame().await;
    drop(ex);
    fetch(&t, &server.url("/bytes/10")).await;
    assert_eq!(server.conns(), [1, 2, 3]);
    wait_for("the cut connection to end", || server.ended() == 2).await;
    assert_eq!(pool(&t).idle(), 1, "only the read one is kept");
    // A HEAD has no body: it has ended with its head.
    let head = crate::net::send(Method::HEAD, &server.url("/bytes/5"), HeaderMap::new(), &t)
        .await
        .unwrap();
    drop(head);
    fetch(&t, &server.url("/bytes/10")).await;
    assert_eq!(server.conns(), [1, 2, 3, 3, 3]);
}

#[tokio::test]
async fn at_most_max_idle_per_host_are_kept() {
    let server = Server::start().await;
    let t = transport(keep_alive(), HttpsProbe::Off);
    let url = server.url("/bytes/10");
    let exchanges = vec![
        get(&t, &url).await,
        get(&t, &url).await,
        get(&t, &url).await,
    ];
    assert_eq!(server.accepted(), 3);
    for ex in exchanges {
        read_small(ex.body, 1 << 10, None).await.unwrap();
    }
    assert_eq!(pool(&t).idle(), 2);
    wait_for("the third connection to close", || server.ended() == 1).await;
    wait_for("the gauge to see it", || t.gauge.current() == 2).await;
}

#[tokio::test]
async fn an_idle_connection_closes_after_the_idle_timeout_even_after_the_pull() {
    let server = Server::start().await;
    let quick = KeepAlive {
        max_idle_per_host: 2,
        idle_timeout: Duration::from_millis(200),
    };
    let t = transport(ConnectionModel::KeepAlive(quick), HttpsProbe::Off);
    fetch(&t, &server.url("/bytes/10")).await;
    assert_eq!(pool(&t).idle(), 1);
    wait_for("the idle timeout", || pool(&t).idle() == 0).await;
    wait_for("the server to see the close", || server.ended() == 1).await;
    fetch(&t, &server.url("/bytes/10")).await;
    assert_eq!(server.conns(), [1, 2]);
    // The pull ends (its transport dropped): the idle connection stays open until its
    // timeout, as a Go transport's idle connection does.
    drop(t);
    assert_eq!(server.ended(), 1);
    wait_for("the idle timeout after the pull", || server.ended() == 2).await;
}

#[tokio::test]
async fn a_connection_the_server_closes_is_not_reused() {
    let server = Server::start().await;
    let t = transport(keep_alive(), HttpsProbe::Off);
    fetch(&t, &server.url("/close/10")).await;
    assert_eq!(pool(&t).idle(), 0, "Connection: close from the server");
    fetch(&t, &server.url("/bytes/10")).await;
    assert_eq!(server.conns(), [1, 2]);
}

#[tokio::test]
async fn an_idle_connection_closed_by_the_server_is_replaced() {
    // A server that answers one request per connection, then closes without saying so.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = Url::parse(&format!("http://{}/x", listener.local_addr().unwrap())).unwrap();
    let accepted = Arc::new(AtomicU64::new(0));
    let a = accepted.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            a.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .await;
        }
    });
    let t = transport(keep_alive(), HttpsProbe::Off);
    assert_eq!(&fetch(&t, &url).await[..], b"ok");
    for _ in 0..2 {
        assert_eq!(&fetch(&t, &url).await[..], b"ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 3);
    let tally = pool(&t).take_tally();
    assert_eq!(
        (tally.opened, tally.requests, tally.most_requests),
        (3, 3, 1)
    );
}

#[tokio::test]
async fn the_resolve_lane_has_connections_of_its_own() {
    let server = Server::start().await;
    let t = transport(keep_alive(), HttpsProbe::Off);
    let head = |t: Transport, url: Url| async move {
        let ex = crate::net::send(Method::HEAD, &url, HeaderMap::new(), &t)
            .await
            .unwrap();
        drop(ex);
    };
    resolving(head(t.clone(), server.url("/bytes/5"))).await;
    fetch(&t, &server.url("/bytes/10")).await;
    fetch(&t, &server.url("/bytes/10")).await;
    resolving(head(t.clone(), server.url("/bytes/5"))).await;
    assert_eq!(server.conns(), [1, 2, 2, 1]);
    assert_eq!(pool(&t).idle(), 2);
}

#[tokio::test]
async fn pulls_share_no_connections() {
    let server = Server::start().await;
    let t = transport(keep_alive(), HttpsProbe::Off);
    fetch(&t, &server.url("/bytes/10")).await;
    let next_pull = t.for_pull();
    fetch(&next_pull, &server.url("/bytes/10")).await;
    assert_eq!(server.conns(), [1, 2]);
}

#[tokio::test]
async fn the_close_model_opens_one_connection_per_request_and_says_so() {
    let server = Server::start().await;
    let t = transport(ConnectionModel::Close { header: true }, HttpsProbe::Off);
    for _ in 0..3 {
        fetch(&t, &server.url("/bytes/10")).await;
    }
    let seen = server.seen();
    assert_eq!(server.conns(), [1, 2, 3]);
    assert!(
        seen.iter()
            .all(|s| s.connection.as_deref() == Some("close")),
        "{seen:?}"
    );
    wait_for("every connection to end", || server.ended() == 3).await;
    let tally = pool(&t).take_tally();
    assert_eq!(
        (tally.opened, tally.requests, tally.most_requests),
        (3, 3, 1)
    );
    // Without the header (pullstorm's own requests, and the default): still one each.
    let quiet = transport(ConnectionModel::Close { header: false }, HttpsProbe::Off);
    fetch(&quiet, &server.url("/bytes/10")).await;
    fetch(&quiet, &server.url("/bytes/10")).await;
    let seen = server.seen();
    assert_eq!(seen[3..].iter().map(|s| s.conn).collect::<Vec<_>>(), [4, 5]);
    assert!(seen[3..].iter().all(|s| s.connection.is_none()), "{seen:?}");
}

#[tokio::test]
async fn the_https_probe_is_one_connection_before_the_first_request_only() {
    let server = Server::start().await;
    let t = transport(ConnectionModel::Close { header: true }, HttpsProbe::PerPull);
    fetch(&t, &server.url("/bytes/10")).await;
    fetch(&t, &server.url("/bytes/10")).await;
    // The probe's ClientHello is no HTTP request the server could log as such.
    assert_eq!(server.accepted(), 3);
    assert_eq!(server.conns(), [2, 3]);
    let tally = pool(&t).take_tally();
    assert_eq!(
        (tally.opened, tally.requests, tally.https_probes),
        (3, 2, 1)
    );
    assert!(
        tally.tls_handshakes.is_empty(),
        "the probe never completes one"
    );
    // Each pull probes again.
    fetch(&t.for_pull(), &server.url("/bytes/10")).await;
    assert_eq!(server.accepted(), 5);
}

#[tokio::test]
async fn a_probe_per_pool_precedes_each_lanes_first_request() {
    let server = Server::start().await;
    let t = transport(keep_alive(), HttpsProbe::PerPool);
    let head = |t: Transport, url: Url| async move {
        let ex = crate::net::send(Method::HEAD, &url, HeaderMap::new(), &t)
            .await
            .unwrap();
        drop(ex);
    };
    resolving(head(t.clone(), server.url("/bytes/5"))).await;
    fetch(&t, &server.url("/bytes/10")).await;
    fetch(&t, &server.url("/bytes/10")).await;
    // probe, HEAD, probe, GET, GET (kept alive): four connections, two of them probes.
    assert_eq!(server.accepted(), 4);
    assert_eq!(server.conns(), [2, 4, 4]);
    let tally = pool(&t).take_tally();
    assert_eq!(
        (tally.opened, tally.requests, tally.https_probes),
        (4, 3, 2)
    );
}
