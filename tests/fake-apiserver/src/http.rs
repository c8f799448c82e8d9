//! The fake over real HTTP/1.1 on 127.0.0.1, so a controller built from an ordinary
//! `kube::Config` (connection pool, timeouts, chunked watch streams) or a controller binary in
//! another process talks to it as to a real apiserver; and outages on demand.
//!
//! The accept loop owns the listener and every connection task: `Refuse` drops both (connects
//! are refused, streams cut), `Hang` keeps accepting but holds every request and every watch
//! frame, and `restore` re-binds the same port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use http::Request;
use http_body::Body as _;
use http_body_util::{BodyExt as _, StreamBody};
use hyper_util::rt::TokioIo;
use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedAuthInfo, NamedCluster,
    NamedContext,
};
use serde_json::json;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::outage::OutageMode;
use crate::routes::ResponseBody;
use crate::{FakeApiServer, FakeError};

/// What the server is doing, with a sequence number so an acknowledgement names its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mode {
    seq: u64,
    outage: Option<OutageMode>,
}

impl Mode {
    fn hung(&self) -> bool {
        self.outage == Some(OutageMode::Hang)
    }
}

/// A running HTTP server for a [`FakeApiServer`]; dropping it stops the server and cuts
/// every connection.
#[derive(Debug)]
pub struct HttpHandle {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    /// The mode the accept loop has put into effect, or why it could not.
    applied: watch::Receiver<(Mode, Option<String>)>,
    task: JoinHandle<()>,
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // The old connections of this port may linger in TIME_WAIT after an outage.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

impl FakeApiServer {
    /// Serves this server over plain HTTP/1.1 on `127.0.0.1` on a free port. Must be called
    /// inside a Tokio runtime. Panics if no port can be bound; see [`Self::try_serve_http`].
    pub fn serve_http(&self) -> HttpHandle {
        match self.try_serve_http() {
            Ok(handle) => handle,
            Err(e) => panic!("{e}"),
        }
    }

    /// Fallible [`Self::serve_http`].
    pub fn try_serve_http(&self) -> Result<HttpHandle, FakeError> {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .map_err(|e| FakeError::Serve(format!("binding 127.0.0.1:0: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| FakeError::Serve(e.to_string()))?;
        let serving = Mode {
            seq: 0,
            outage: None,
        };
        let (mode, mode_rx) = watch::channel(serving);
        let (applied_tx, applied) = watch::channel((serving, None));
        let task = tokio::spawn(accept_loop(
            self.clone(),
            listener,
            addr,
            mode_rx,
            applied_tx,
        ));
        Ok(HttpHandle {
            addr,
            mode,
            applied,
            task,
        })
    }
}

impl HttpHandle {
    /// The bound address (`127.0.0.1:<port>`); the port stays the same across outages.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this server, default namespace `default`. With `token` (see
    /// [`crate::service_account_token`]) requests authenticate as that ServiceAccount; without
    /// one they are cluster-admin.
    pub fn kubeconfig(&self, token: Option<&str>) -> Kubeconfig {
        let user: AuthInfo = token
            .and_then(|t| serde_json::from_value(json!({"token": t})).ok())
            .unwrap_or_default();
        Kubeconfig {
            clusters: vec![NamedCluster {
                name: "fake".to_owned(),
                cluster: Some(Cluster {
                    server: Some(self.url()),
                    ..Cluster::default()
                }),
                ..NamedCluster::default()
            }],
            auth_infos: vec![NamedAuthInfo {
                name: "fake".to_owned(),
                auth_info: Some(user),
                ..NamedAuthInfo::default()
            }],
            contexts: vec![NamedContext {
                name: "fake".to_owned(),
                context: Some(Context {
                    cluster: "fake".to_owned(),
                    user: Some("fake".to_owned()),
                    namespace: Some("default".to_owned()),
                    ..Context::default()
                }),
                ..NamedContext::default()
            }],
            current_context: Some("fake".to_owned()),
            ..Kubeconfig::default()
        }
    }

    /// Writes [`Self::kubeconfig`] to `path` (JSON, which every kubeconfig reader accepts), for
    /// a controller binary started with `KUBECONFIG=path`.
    pub fn write_kubeconfig(
        &self,
        path: &std::path::Path,
        token: Option<&str>,
    ) -> Result<(), FakeError> {
        let text = serde_json::to_string_pretty(&self.kubeconfig(token))
            .map_err(|e| FakeError::Serve(e.to_string()))?;
        std::fs::write(path, text)
            .map_err(|e| FakeError::Serve(format!("writing {}: {e}", path.display())))
    }

    /// A `kube::Config` from [`Self::kubeconfig`], with kube's default timeouts; change its
    /// `read_timeout` and friends before building a client to test timeouts.
    pub async fn config(&self, token: Option<&str>) -> Result<kube::Config, FakeError> {
        kube::Config::from_custom_kubeconfig(self.kubeconfig(token), &KubeConfigOptions::default())
            .await
            .map_err(|e| FakeError::Serve(e.to_string()))
    }

    /// A `kube::Client` over HTTP from [`Self::config`].
    pub async fn client(&self, token: Option<&str>) -> Result<kube::Client, FakeError> {
        kube::Client::try_from(self.config(token).await?)
            .map_err(|e| FakeError::Serve(e.to_string()))
    }

    /// Starts an outage (see [`OutageMode`]); returns once it is in effect.
    pub async fn outage(&self, mode: OutageMode) -> Result<(), FakeError> {
        self.set(Some(mode)).await
    }

    /// Ends an outage: re-binds the same port if it was closed, answers held requests and
    /// resumes stalled watch streams. Returns once the server answers again.
    pub async fn restore(&self) -> Result<(), FakeError> {
        self.set(None).await
    }

    async fn set(&self, outage: Option<OutageMode>) -> Result<(), FakeError> {
        let mut seq = 0;
        self.mode.send_modify(|m| {
            m.seq += 1;
            m.outage = outage;
            seq = m.seq;
        });
        let mut applied = self.applied.clone();
        let (_, error) = applied
            .wait_for(|(mode, _)| mode.seq >= seq)
            .await
            .map_err(|_| FakeError::Serve("the HTTP server task has stopped".to_owned()))?
            .clone();
        match error {
            Some(e) => Err(FakeError::Serve(e)),
            None => Ok(()),
        }
    }
}

impl Drop for HttpHandle {
    fn drop(&mut self) {
        // Dropping the task drops its JoinSet, which aborts every connection.
        self.task.abort();
    }
}

async fn accept_loop(
    server: FakeApiServer,
    listener: TcpListener,
    addr: SocketAddr,
    mut mode_rx: watch::Receiver<Mode>,
    applied: watch::Sender<(Mode, Option<String>)>,
) {
    let mut listener = Some(listener);
    let mut connections = JoinSet::new();
    loop {
        let mode = *mode_rx.borrow_and_update();
        if mode.outage == Some(OutageMode::Refuse) {
            listener = None;
            connections.abort_all();
            while connections.join_next().await.is_some() {}
            applied.send_replace((mode, None));
            if mode_rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        let current = match listener.take() {
            Some(l) => l,
            None => match rebind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    applied.send_replace((mode, Some(format!("re-binding {addr}: {e}"))));
                    if mode_rx.changed().await.is_err() {
                        return;
                    }
                    continue;
                }
            },
        };
        applied.send_replace((mode, None));
        loop {
            tokio::select! {
                changed = mode_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                accepted = current.accept() => {
                    if let Ok((stream, _)) = accepted {
                        connections.spawn(serve_connection(server.clone(), stream, mode_rx.clone()));
                    }
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        listener = Some(current);
    }
}

/// Re-binds the port of a closed listener, retrying briefly in case the kernel still holds it.
async fn rebind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut attempt = 0;
    loop {
        match bind(addr) {
            Ok(l) => return Ok(l),
            Err(e) if attempt >= 40 => return Err(e),
            Err(_) => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection(server: FakeApiServer, stream: TcpStream, mode: watch::Receiver<Mode>) {
    let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
        let server = server.clone();
        let mut mode = mode.clone();
        async move {
            wait_while_hung(&mut mode).await;
            let response = match tower::ServiceExt::oneshot(server, req).await {
                Ok(response) => response,
                Err(never) => match never {},
            };
            Ok::<_, Infallible>(response.map(|body| stall_while_hung(body, mode)))
        }
    });
    // A connection error is the client's business (it went away, or the outage cut it).
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn wait_while_hung(mode: &mut watch::Receiver<Mode>) {
    // A dropped sender means the server is stopping; the connection goes with it.
    let _ = mode.wait_for(|m| !m.hung()).await;
}

/// Streams (watches) hold each frame while the server hangs; whole documents pass as they are.
fn stall_while_hung(body: ResponseBody, mode: watch::Receiver<Mode>) -> ResponseBody {
    if body.size_hint().exact().is_some() {
        return body;
    }
    let frames = futures::stream::unfold((body, mode), |(mut body, mut mode)| async move {
        let frame = body.frame().await?;
        wait_while_hung(&mut mode).await;
        Some((frame, (body, mode)))
    });
    StreamBody::new(frames).boxed_unsync()
}
