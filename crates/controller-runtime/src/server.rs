//! The HTTP endpoint every binary serves: /metrics, /healthz, /readyz.

use crate::health::Health;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::Registry;
use std::net::SocketAddr;

/// Content type of the Prometheus text exposition format.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone)]
struct AppState {
    registry: Registry,
    health: Health,
}

/// axum Router with GET /metrics (Prometheus text format of `registry`), /healthz (200 "ok"), /readyz
/// (200 once ready, else 503; the body reports readiness and leader/standby state).
pub fn router(registry: Registry, health: Health) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(AppState { registry, health })
}

async fn metrics(State(state): State<AppState>) -> Response {
    // Gathering runs custom collectors (the exporter computes gauges from its stores here), so it
    // runs on the blocking pool to keep the async workers free on large stores.
    let registry = state.registry.clone();
    let encoded = tokio::task::spawn_blocking(move || {
        prometheus::TextEncoder::new().encode_to_string(&registry.gather())
    })
    .await;
    match encoded {
        Ok(Ok(body)) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], body).into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot encode metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode metrics: {e}\n"),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "metrics gathering task failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics gathering failed\n",
            )
                .into_response()
        }
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    let ready = state.health.is_ready();
    let role = if state.health.is_leader() {
        "leader"
    } else {
        "standby"
    };
    let body = format!("ready={ready} role={role}\n");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

/// Binds `addr` and serves `router` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics /healthz /readyz");
    serve_listener(listener, router, shutdown).await
}

/// Like [`serve`] on an already bound listener (tests bind port 0 and read the port back).
pub async fn serve_listener(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::parse;
    use crate::metrics::ControllerMetrics;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_path(router: Router, path: &str) -> (StatusCode, Option<String>, String) {
        let resp = router
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn metrics_endpoint_serves_registered_families_in_text_format() {
        let registry = Registry::new();
        let m = ControllerMetrics::new("scheduled-controller", &registry);
        m.reconcile_failed("InvalidSchedule");
        m.api_write("cronjobs", "apply");
        m.set_leader(true);
        drop(m.reconcile_timer());
        let (status, ct, body) = get_path(router(registry, Health::default()), "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some(METRICS_CONTENT_TYPE));
        let e = parse(&body).unwrap();
        for (name, ty) in [
            ("backup_maker_reconcile_total", "counter"),
            ("backup_maker_reconcile_errors_total", "counter"),
            ("backup_maker_reconcile_duration_seconds", "histogram"),
            ("backup_maker_api_writes_total", "counter"),
            ("backup_maker_leader", "gauge"),
        ] {
            assert_eq!(e.type_of(name), Some(ty), "TYPE line of {name}");
        }
        let c = ("controller", "scheduled-controller");
        assert_eq!(
            e.value(
                "backup_maker_reconcile_errors_total",
                &[c, ("reason", "InvalidSchedule")]
            ),
            Some(1.0)
        );
        assert_eq!(
            e.value(
                "backup_maker_api_writes_total",
                &[c, ("resource", "cronjobs"), ("verb", "apply")]
            ),
            Some(1.0)
        );
        assert_eq!(e.value("backup_maker_leader", &[c]), Some(1.0));
        assert_eq!(
            e.value("backup_maker_reconcile_duration_seconds_count", &[c]),
            Some(1.0)
        );
        // Every sample carries exactly the documented labels, never per-object ones.
        for s in &e.samples {
            let mut keys: Vec<&str> = s.labels.keys().map(String::as_str).collect();
            keys.retain(|k| *k != "le");
            let expected: &[&str] = match e.family_of(&s.name) {
                "backup_maker_reconcile_total" => &["controller", "result"],
                "backup_maker_reconcile_errors_total" => &["controller", "reason"],
                "backup_maker_api_writes_total" => &["controller", "resource", "verb"],
                _ => &["controller"],
            };
            assert_eq!(keys, expected, "labels of {}", s.name);
        }
    }

    #[tokio::test]
    async fn healthz_is_always_ok() {
        let (status, _, body) =
            get_path(router(Registry::new(), Health::default()), "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "ok");
    }

    #[tokio::test]
    async fn readyz_turns_from_unavailable_to_ok_when_ready() {
        let health = Health::default();
        let app = router(Registry::new(), health.clone());
        let (status, _, body) = get_path(app.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "ready=false role=standby\n");
        health.set_ready(true);
        let (status, _, body) = get_path(app.clone(), "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "ready=true role=standby\n");
    }

    #[tokio::test]
    async fn standby_replica_is_still_ready_and_reports_its_role() {
        let health = Health::default();
        health.set_ready(true);
        let app = router(Registry::new(), health.clone());
        assert_eq!(get_path(app.clone(), "/readyz").await.0, StatusCode::OK);
        health.set_leader(true);
        let (status, _, body) = get_path(app, "/readyz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "ready=true role=leader\n");
    }

    #[tokio::test]
    async fn unknown_path_is_404() {
        let (status, _, _) = get_path(router(Registry::new(), Health::default()), "/nope").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn serve_listens_and_stops_on_shutdown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_listener(
            listener,
            router(Registry::new(), Health::default()),
            async {
                let _ = rx.await;
            },
        ));
        let resp = tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut conn = std::net::TcpStream::connect(addr).unwrap();
            conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut resp = String::new();
            conn.read_to_string(&mut resp).unwrap();
            resp
        })
        .await
        .unwrap();
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.ends_with("ok"), "{resp}");
        tx.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), server)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
