//! The fake API server over HTTP on 127.0.0.1, with every request counted per identity, verb and
//! resource (the fake itself counts only writes), and an outage switch (listener closed, open
//! connections and watches cut) that makes the controllers reconnect and, after the fake's event
//! log is compacted, re-list and reconcile everything: a full resync as production sees one.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fake_apiserver::FakeApiServer;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::BenchError;

/// Identity, verb class and resource of one request.
pub type RequestKey = (String, &'static str, String);

/// Request counts since the last reset.
#[derive(Default, Debug)]
pub struct Requests {
    counts: Mutex<BTreeMap<RequestKey, u64>>,
}

impl Requests {
    fn record(&self, key: RequestKey) {
        *self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_insert(0) += 1;
    }

    /// A copy of the counts.
    pub fn snapshot(&self) -> BTreeMap<RequestKey, u64> {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Zeroes the counts.
    pub fn reset(&self) {
        self.counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Who sent a request: the ServiceAccount name of a `Bearer <namespace>:<serviceaccount>` token
/// without the chart's `backup-maker-` prefix (so, the controller), else `admin`.
pub fn identity(authorization: Option<&str>) -> String {
    authorization
        .and_then(|h| h.strip_prefix("Bearer "))
        .and_then(|t| t.split_once(':'))
        .map(|(_, sa)| sa.strip_prefix("backup-maker-").unwrap_or(sa).to_owned())
        .unwrap_or_else(|| "admin".to_owned())
}

/// The verb class (`get`, `list`, `watch`, `create`, `update`, `patch`, `apply`, `delete`,
/// `discovery`) and resource (`plural` or `plural/subresource`) of a request.
pub fn classify(
    method: &str,
    path: &str,
    query: &str,
    content_type: &str,
) -> (&'static str, String) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    // /api/v1/... or /apis/<group>/<version>/...
    let rest: &[&str] = match parts.as_slice() {
        ["api", _version, rest @ ..] => rest,
        ["apis", _group, _version, rest @ ..] => rest,
        _ => &[],
    };
    let rest = match rest {
        ["namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    let (resource, named) = match rest {
        [] => return ("discovery", String::new()),
        [plural] => ((*plural).to_owned(), false),
        [plural, _name] => ((*plural).to_owned(), true),
        [plural, _name, sub, ..] => (format!("{plural}/{sub}"), true),
    };
    let watching = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match method {
        "GET" if watching => "watch",
        "GET" if named => "get",
        "GET" => "list",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" if content_type.starts_with("application/apply-patch") => "apply",
        "PATCH" => "patch",
        "DELETE" => "delete",
        _ => "other",
    };
    (verb, resource)
}

/// The fake served over HTTP; dropping it stops the server.
pub struct Served {
    addr: SocketAddr,
    /// Request counts.
    pub requests: Arc<Requests>,
    up: watch::Sender<bool>,
    applied: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    // Connections of the previous listener linger in TIME_WAIT after an outage.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

impl Served {
    /// Serves `fake` on a free port of 127.0.0.1.
    pub fn start(fake: &FakeApiServer) -> Result<Served, BenchError> {
        let listener = bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .map_err(BenchError::io("binding 127.0.0.1:0"))?;
        let addr = listener
            .local_addr()
            .map_err(BenchError::io("reading the bound address"))?;
        let requests = Arc::new(Requests::default());
        let (up, up_rx) = watch::channel(true);
        let (applied_tx, applied) = watch::channel(true);
        let task = tokio::spawn(accept_loop(
            fake.clone(),
            requests.clone(),
            listener,
            addr,
            up_rx,
            applied_tx,
        ));
        Ok(Served {
            addr,
            requests,
            up,
            applied,
            task,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig (JSON) for a controller process; `service_account` of the chart's release
    /// namespace, or cluster admin with `None`.
    pub fn kubeconfig(&self, service_account: Option<&str>) -> String {
        let user = match service_account {
            Some(sa) => serde_json::json!({
                "token": fake_apiserver::service_account_token(crate::RELEASE_NAMESPACE, sa)
            }),
            None => serde_json::json!({}),
        };
        serde_json::json!({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url()}}],
            "users": [{"name": "bench", "user": user}],
            "contexts": [{"name": "bench", "context": {"cluster": "fake", "user": "bench"}}],
            "current-context": "bench"
        })
        .to_string()
    }

    /// A cluster-admin client over HTTP.
    pub fn admin_client(&self) -> Result<kube::Client, BenchError> {
        let url = self
            .url()
            .parse()
            .map_err(|e| BenchError::Proc(format!("server url: {e}")))?;
        Ok(kube::Client::try_from(kube::Config::new(url))?)
    }

    /// Closes the listener and cuts every connection (watches included); waits until done.
    pub async fn outage(&self) {
        self.switch(false).await;
    }

    /// Listens again on the same port.
    pub async fn restore(&self) {
        self.switch(true).await;
    }

    async fn switch(&self, up: bool) {
        self.up.send_replace(up);
        let mut applied = self.applied.clone();
        let _ = applied.wait_for(|a| *a == up).await;
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    fake: FakeApiServer,
    requests: Arc<Requests>,
    listener: TcpListener,
    addr: SocketAddr,
    mut up: watch::Receiver<bool>,
    applied: watch::Sender<bool>,
) {
    let mut listener = Some(listener);
    let mut connections = JoinSet::new();
    loop {
        if !*up.borrow_and_update() {
            listener = None;
            connections.abort_all();
            while connections.join_next().await.is_some() {}
            applied.send_replace(false);
            if up.changed().await.is_err() {
                return;
            }
            continue;
        }
        let current = match listener.take() {
            Some(l) => l,
            None => match rebind(addr).await {
                Some(l) => l,
                None => return,
            },
        };
        applied.send_replace(true);
        loop {
            tokio::select! {
                changed = up.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                accepted = current.accept() => {
                    if let Ok((stream, _)) = accepted {
                        let _ = stream.set_nodelay(true);
                        connections.spawn(serve_connection(fake.clone(), requests.clone(), stream));
                    }
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        listener = Some(current);
    }
}

async fn rebind(addr: SocketAddr) -> Option<TcpListener> {
    for _ in 0..100 {
        if let Ok(l) = bind(addr) {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn serve_connection(
    fake: FakeApiServer,
    requests: Arc<Requests>,
    stream: tokio::net::TcpStream,
) {
    let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let fake = fake.clone();
        let header = |name: http::header::HeaderName| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let user = identity(header(http::header::AUTHORIZATION).as_deref());
        let content_type = header(http::header::CONTENT_TYPE).unwrap_or_default();
        let (verb, resource) = classify(
            req.method().as_str(),
            req.uri().path(),
            req.uri().query().unwrap_or(""),
            &content_type,
        );
        requests.record((user, verb, resource));
        async move {
            match tower::ServiceExt::oneshot(fake, req).await {
                Ok(response) => Ok::<_, Infallible>(response),
                Err(never) => match never {},
            }
        }
    });
    // A connection error is the client's business (it went away, or the outage cut it).
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_classified_by_verb_and_resource_with_subresources() {
        let c = |m, p, q, ct| classify(m, p, q, ct);
        assert_eq!(
            c("GET", "/api/v1/secrets", "", ""),
            ("list", "secrets".to_owned())
        );
        assert_eq!(
            c(
                "GET",
                "/apis/batch/v1/namespaces/t/jobs",
                "watch=true&resourceVersion=5",
                ""
            ),
            ("watch", "jobs".to_owned())
        );
        assert_eq!(
            c("GET", "/api/v1/namespaces/t/secrets/k", "", ""),
            ("get", "secrets".to_owned())
        );
        assert_eq!(
            c(
                "PATCH",
                "/apis/riotkit.org/v1alpha1/namespaces/t/scheduledbackups/db/status",
                "fieldManager=x",
                "application/apply-patch+yaml"
            ),
            ("apply", "scheduledbackups/status".to_owned())
        );
        assert_eq!(
            c(
                "PATCH",
                "/api/v1/namespaces/t/configmaps/c",
                "",
                "application/merge-patch+json"
            ),
            ("patch", "configmaps".to_owned())
        );
        assert_eq!(
            c("POST", "/apis/events.k8s.io/v1/namespaces/t/events", "", ""),
            ("create", "events".to_owned())
        );
        // A namespace itself, and discovery.
        assert_eq!(
            c("GET", "/api/v1/namespaces/t", "", ""),
            ("get", "namespaces".to_owned())
        );
        assert_eq!(
            c("GET", "/apis/batch/v1", "", ""),
            ("discovery", String::new())
        );
    }

    #[test]
    fn the_identity_is_the_controller_of_the_service_account_token() {
        assert_eq!(
            identity(Some("Bearer backup-maker:backup-maker-gpg-keygen")),
            "gpg-keygen"
        );
        assert_eq!(identity(None), "admin");
    }

    #[tokio::test]
    async fn requests_are_counted_per_identity_and_an_outage_refuses_until_restored() {
        use k8s_openapi::api::core::v1::Secret;
        let secret = |name: &str| -> Secret {
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
        };
        let fake = FakeApiServer::new();
        let served = Served::start(&fake).unwrap();
        let client = served.admin_client().unwrap();
        let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), "t");
        secrets.list(&Default::default()).await.unwrap();
        secrets
            .create(&Default::default(), &secret("s"))
            .await
            .unwrap();
        let counts = served.requests.snapshot();
        assert_eq!(
            counts[&("admin".to_owned(), "list", "secrets".to_owned())],
            1
        );
        assert_eq!(
            counts[&("admin".to_owned(), "create", "secrets".to_owned())],
            1
        );

        served.outage().await;
        let refused = tokio::net::TcpStream::connect(served.addr).await;
        assert!(refused.is_err(), "the listener is closed during an outage");
        served.restore().await;
        served.requests.reset();
        // A new client: the old one's pooled connection was cut.
        let secrets: kube::Api<Secret> = kube::Api::namespaced(served.admin_client().unwrap(), "t");
        assert_eq!(
            secrets.get("s").await.unwrap().metadata.name.as_deref(),
            Some("s")
        );
        assert_eq!(
            served.requests.snapshot()[&("admin".to_owned(), "get", "secrets".to_owned())],
            1
        );
    }
}
