//! Test cluster: the in-process fake API server, plus what it does not model and the plugin needs:
//! `pods/log` (fixed text or a stream the test feeds) and RBAC refusals (403 with a real apiserver message).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use fake_apiserver::{FakeApiServer, ResponseBody};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use jiff::Timestamp;
use kubectl_backup::{Session, Style};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// The "now" of every test: output that shows relative times is reproducible.
pub const NOW: &str = "2030-03-01T12:00:00Z";

/// A log served for a Pod: fixed text, or chunks a test sends until it drops the sender.
enum Log {
    Text(String),
    Stream(Option<mpsc::UnboundedReceiver<String>>),
}

#[derive(Default)]
struct Extras {
    logs: HashMap<String, Log>,
    /// (HTTP method, path fragment, verb, resource): requests refused with 403.
    forbidden: Vec<(http::Method, String, String, String)>,
    requests: Vec<String>,
}

/// The fake API server with logs and RBAC refusals; a tower service for `kube::Client`.
#[derive(Clone)]
pub struct TestCluster {
    /// The fake API server (seed and inspect objects through it).
    pub fake: FakeApiServer,
    extras: Arc<Mutex<Extras>>,
}

impl TestCluster {
    /// A fake server with the CRDs' defaults (as the e2e harness builds it).
    pub fn new() -> TestCluster {
        Self::build(None)
    }

    /// The same, enforcing RBAC (Roles, ClusterRoles and bindings in `yaml`) for ServiceAccount clients.
    pub fn with_rbac(yaml: &str) -> TestCluster {
        Self::build(Some(fake_apiserver::Rbac::from_manifests(yaml)))
    }

    fn build(rbac: Option<fake_apiserver::Rbac>) -> TestCluster {
        let mut builder = FakeApiServer::builder();
        for crd in crd_types::all_crds() {
            builder = builder.crd_defaults_from_yaml(&serde_json::to_string(&crd).unwrap());
        }
        if let Some(rbac) = rbac {
            builder = builder.rbac(rbac);
        }
        TestCluster {
            fake: builder.build(),
            extras: Default::default(),
        }
    }

    /// A session on namespace `ns` authenticated as ServiceAccount `ns/service_account`.
    pub fn session_as(&self, ns: &str, service_account: &str) -> Session {
        let token = format!(
            "Bearer {}",
            fake_apiserver::service_account_token(ns, service_account)
        );
        let value = http::HeaderValue::try_from(token).unwrap();
        let service = tower::ServiceBuilder::new()
            .map_request(move |mut req: Request<kube::client::Body>| {
                req.headers_mut()
                    .insert(http::header::AUTHORIZATION, value.clone());
                req
            })
            .service(self.clone());
        Session {
            now: NOW.parse().unwrap(),
            style: Style::PLAIN,
            ..Session::new(kube::Client::new(service, ns), ns)
        }
    }

    /// A session on namespace `ns` at [`NOW`], plain output.
    pub fn session(&self, ns: &str) -> Session {
        Session {
            now: NOW.parse().unwrap(),
            style: Style::PLAIN,
            ..Session::new(kube::Client::new(self.clone(), "default"), ns)
        }
    }

    /// Seeds objects (YAML, `---` separated).
    pub fn seed(&self, yaml: &str) {
        let docs: Vec<Value> = serde_saphyr::from_multiple(yaml).unwrap();
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            self.fake.insert(doc).unwrap();
        }
    }

    /// Serves `text` as the log of Pod `pod`.
    pub fn log(&self, pod: &str, text: &str) {
        self.extras
            .lock()
            .unwrap()
            .logs
            .insert(pod.into(), Log::Text(text.into()));
    }

    /// Serves the log of `pod` as a stream: each sent string is a chunk; dropping the sender ends the log.
    pub fn log_stream(&self, pod: &str) -> mpsc::UnboundedSender<String> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.extras
            .lock()
            .unwrap()
            .logs
            .insert(pod.into(), Log::Stream(Some(rx)));
        tx
    }

    /// Refuses `method` requests whose path contains `fragment` with a kube-apiserver style 403.
    pub fn forbid(&self, method: http::Method, fragment: &str, verb: &str, resource: &str) {
        self.extras.lock().unwrap().forbidden.push((
            method,
            fragment.into(),
            verb.into(),
            resource.into(),
        ));
    }

    /// Every request so far, as `METHOD path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.extras.lock().unwrap().requests.clone()
    }
}

fn body(bytes: impl Into<Bytes>) -> ResponseBody {
    Full::new(bytes.into()).boxed_unsync()
}

impl<B> tower::Service<Request<B>> for TestCluster
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let path = req.uri().path().to_string();
        let mut extras = self.extras.lock().unwrap();
        extras
            .requests
            .push(format!("{} {}", req.method(), req.uri()));
        let refused = extras
            .forbidden
            .iter()
            .find(|(m, fragment, _, _)| m == req.method() && path.contains(fragment.as_str()))
            .cloned();
        if let Some((_, _, verb, resource)) = refused {
            let (plural, group) = resource.split_once('.').unwrap_or((resource.as_str(), ""));
            let ns = path
                .split('/')
                .skip_while(|s| *s != "namespaces")
                .nth(1)
                .unwrap_or("");
            let status = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("{plural} is forbidden: User \"jane\" cannot {verb} resource \"{plural}\" in API group \"{group}\" in the namespace \"{ns}\""),
                "reason": "Forbidden", "details": {"kind": plural}, "code": 403
            });
            let response = Response::builder()
                .status(StatusCode::FORBIDDEN)
                .header("content-type", "application/json")
                .body(body(serde_json::to_vec(&status).unwrap()))
                .unwrap();
            return Box::pin(async move { Ok(response) });
        }
        if let Some(pod) = path
            .strip_suffix("/log")
            .and_then(|p| p.rsplit('/').next())
            .filter(|_| path.contains("/pods/"))
        {
            let response = match extras.logs.get_mut(pod) {
                Some(Log::Text(text)) => Response::new(body(text.clone())),
                Some(Log::Stream(rx)) => {
                    let rx = rx.take().expect("a log stream is served once");
                    let chunks = futures::stream::unfold(rx, |mut rx| async move {
                        let chunk = rx.recv().await?;
                        Some((Ok(http_body::Frame::data(Bytes::from(chunk))), rx))
                    });
                    Response::new(StreamBody::new(chunks).boxed_unsync())
                }
                None => {
                    let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "message": format!("pods \"{pod}\" not found"), "reason": "NotFound", "code": 404});
                    Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(body(serde_json::to_vec(&status).unwrap()))
                        .unwrap()
                }
            };
            return Box::pin(async move { Ok(response) });
        }
        drop(extras);
        let mut fake = self.fake.clone();
        Box::pin(async move { tower::Service::call(&mut fake, req).await })
    }
}

/// A `Write` whose bytes a test can read while a command is still running.
#[derive(Clone, Default)]
pub struct SharedOutput(Arc<Mutex<Vec<u8>>>);

impl SharedOutput {
    /// What was written so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for SharedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compares `actual` with `tests/golden/NAME`; `UPDATE_GOLDEN=1 cargo test -p kubectl-backup` rewrites it.
pub fn assert_golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; create it with UPDATE_GOLDEN=1 cargo test -p kubectl-backup",
            path.display()
        )
    });
    pretty_assertions::assert_eq!(expected, actual, "golden file {name}");
}

/// Replaces the server-assigned creation time of `object` (as the plugin prints it at [`NOW`]) with
/// placeholders, so golden files do not depend on when the test ran.
pub fn redact_created(text: &str, object: &Value) -> String {
    let created: Timestamp = object["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let now: Timestamp = NOW.parse().unwrap();
    let age = kubectl_backup::output::short_age(now.duration_since(created));
    let absolute = created.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let relative = kubectl_backup::output::relative(created, now);
    let placeholder = format!("{:<w$}", "<age>", w = age.len());
    text.replace(&format!("{absolute} ({relative})"), "<created>")
        .replace(&format!(" {age} "), &format!(" {placeholder} "))
        .replace(
            &format!(" {age}\n"),
            &format!(" {}\n", placeholder.trim_end()),
        )
}
