//! Reconcile metric families every controller registers.
//!
//! The `controller` label is a *const label* of each collector, so several controllers (e.g. in the
//! e2e tests, or a future single binary) can register into one registry: prometheus merges
//! same-named families at gather time. No per-object labels here (cardinality) and never a secret.

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry};
use std::sync::Arc;
use std::time::Instant;

/// `backup_maker_reconcile_total{controller,result}`: reconciles by outcome.
pub const RECONCILE_TOTAL: &str = "backup_maker_reconcile_total";
/// `backup_maker_reconcile_errors_total{controller,reason}`: failed reconciles by error reason.
pub const RECONCILE_ERRORS_TOTAL: &str = "backup_maker_reconcile_errors_total";
/// `backup_maker_reconcile_duration_seconds{controller}`: reconcile latency histogram.
pub const RECONCILE_DURATION_SECONDS: &str = "backup_maker_reconcile_duration_seconds";
/// `backup_maker_api_writes_total{controller,resource,verb}`: Kubernetes API writes.
pub const API_WRITES_TOTAL: &str = "backup_maker_api_writes_total";
/// `backup_maker_leader{controller}`: 1 while this replica holds the lease.
pub const LEADER: &str = "backup_maker_leader";
/// `backup_maker_watch_restarts_total{controller,kind}`: watch failures (each followed by a retry), by kind.
pub const WATCH_RESTARTS_TOTAL: &str = "backup_maker_watch_restarts_total";

/// Reconcile latency buckets: reconciles are API round trips (ms) up to template renders and
/// several writes (seconds).
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The reconcile metric families every controller registers, labelled by controller:
/// `backup_maker_reconcile_total{controller,result}` (result = success|error),
/// `backup_maker_reconcile_errors_total{controller,reason}`,
/// `backup_maker_reconcile_duration_seconds{controller}` (histogram),
/// `backup_maker_api_writes_total{controller,resource,verb}`,
/// `backup_maker_leader{controller}` (gauge 0/1).
#[derive(Clone)]
pub struct ControllerMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    controller: &'static str,
    reconcile_total: IntCounterVec,
    reconcile_errors: IntCounterVec,
    duration: Histogram,
    api_writes: IntCounterVec,
    leader: IntGauge,
    watch_restarts: IntCounterVec,
}

impl std::fmt::Debug for ControllerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerMetrics")
            .field("controller", &self.inner.controller)
            .finish()
    }
}

/// An error with a stable, low-cardinality label (`reason`) for metrics, events and conditions.
pub trait ErrorReason {
    /// CamelCase, stable label.
    fn reason(&self) -> &'static str;
}

impl ControllerMetrics {
    /// Runs one reconcile and records it: duration, and success or failure by reason. The reconcile returns
    /// `Ok((value, Some(reason)))` when it handled a user error (reported in status, not retried with backoff),
    /// which still counts as a failed reconcile with that reason.
    pub async fn track<T, E: ErrorReason>(
        &self,
        reconcile: impl std::future::Future<Output = Result<(T, Option<&'static str>), E>>,
    ) -> Result<T, E> {
        let _timer = self.reconcile_timer();
        match reconcile.await {
            Ok((value, None)) => {
                self.reconcile_succeeded();
                Ok(value)
            }
            Ok((value, Some(reason))) => {
                self.reconcile_failed(reason);
                Ok(value)
            }
            Err(error) => {
                self.reconcile_failed(error.reason());
                Err(error)
            }
        }
    }

    /// Creates the families for `controller` and registers them in `registry`.
    ///
    /// Registering the same controller name twice in one registry is a programming error; it is
    /// logged and the second instance keeps working unregistered rather than crashing the process.
    pub fn new(controller: &'static str, registry: &Registry) -> Self {
        let opts =
            |name: &str, help: &str| Opts::new(name, help).const_label("controller", controller);
        let reconcile_total = IntCounterVec::new(
            opts(
                RECONCILE_TOTAL,
                "Reconciles finished, by result (success|error).",
            ),
            &["result"],
        )
        .expect("valid metric definition");
        let reconcile_errors = IntCounterVec::new(
            opts(
                RECONCILE_ERRORS_TOTAL,
                "Failed reconciles, by stable error reason.",
            ),
            &["reason"],
        )
        .expect("valid metric definition");
        let duration = Histogram::with_opts(
            HistogramOpts::new(
                RECONCILE_DURATION_SECONDS,
                "Duration of one reconcile in seconds.",
            )
            .const_label("controller", controller)
            .buckets(DURATION_BUCKETS.to_vec()),
        )
        .expect("valid metric definition");
        let api_writes = IntCounterVec::new(
            opts(
                API_WRITES_TOTAL,
                "Kubernetes API writes, by resource and verb (apply|create|delete|patch).",
            ),
            &["resource", "verb"],
        )
        .expect("valid metric definition");
        let leader = IntGauge::with_opts(opts(
            LEADER,
            "1 while this replica holds the leader lease, else 0.",
        ))
        .expect("valid metric definition");

        let watch_restarts = IntCounterVec::new(
            opts(
                WATCH_RESTARTS_TOTAL,
                "Watch failures, each followed by a retry (connection lost, 410 Gone, API server down), by kind.",
            ),
            &["kind"],
        )
        .expect("valid metric definition");

        let collectors: [Box<dyn Collector>; 6] = [
            Box::new(reconcile_total.clone()),
            Box::new(reconcile_errors.clone()),
            Box::new(duration.clone()),
            Box::new(api_writes.clone()),
            Box::new(leader.clone()),
            Box::new(watch_restarts.clone()),
        ];
        for c in collectors {
            if let Err(e) = registry.register(c) {
                tracing::error!(controller, error = %e, "cannot register controller metrics");
            }
        }
        // Pre-create both result series so `rate()` and `increase()` see a 0 before the first
        // failure instead of missing it (a new series' first sample is invisible to increase()).
        reconcile_total.with_label_values(&["success"]);
        reconcile_total.with_label_values(&["error"]);

        Self {
            inner: Arc::new(Inner {
                controller,
                reconcile_total,
                reconcile_errors,
                duration,
                api_writes,
                leader,
                watch_restarts,
            }),
        }
    }

    /// Creates `backup_maker_reconcile_errors_total{reason}` at 0 for every reason the controller's error enum
    /// can report (its `REASONS`), so the family is scraped from start-up: dashboards show 0 instead of "no
    /// data", and `increase()` sees the first error of a reason instead of treating it as a new series. A
    /// controller's `run` calls this once before it starts reconciling.
    pub fn register_reasons(&self, reasons: &[&str]) {
        for reason in reasons {
            self.inner.reconcile_errors.with_label_values(&[reason]);
        }
    }

    /// The controller label value.
    pub fn controller(&self) -> &'static str {
        self.inner.controller
    }

    /// Drop guard: observes one reconcile's duration in
    /// `backup_maker_reconcile_duration_seconds` when dropped (the histogram's `_count` counts
    /// reconciles). The outcome is counted separately by [`Self::reconcile_succeeded`] /
    /// [`Self::reconcile_failed`].
    pub fn reconcile_timer(&self) -> ReconcileTimer {
        ReconcileTimer {
            histogram: self.inner.duration.clone(),
            start: Instant::now(),
        }
    }

    /// Counts a successful reconcile (`result="success"`).
    pub fn reconcile_succeeded(&self) {
        self.inner
            .reconcile_total
            .with_label_values(&["success"])
            .inc();
    }

    /// Counts a failed reconcile (`result="error"`) and its error `reason` (the error enum's stable label).
    pub fn reconcile_failed(&self, reason: &str) {
        self.inner
            .reconcile_total
            .with_label_values(&["error"])
            .inc();
        self.inner
            .reconcile_errors
            .with_label_values(&[reason])
            .inc();
    }

    /// Counts one API write; `verb` is apply|create|delete|patch.
    pub fn api_write(&self, resource: &str, verb: &str) {
        self.inner
            .api_writes
            .with_label_values(&[resource, verb])
            .inc();
    }

    /// Creates `backup_maker_watch_restarts_total{kind}` at 0 for a watched kind (from start-up, not from its first
    /// failure).
    pub fn register_watch(&self, kind: &str) {
        self.inner.watch_restarts.with_label_values(&[kind]);
    }

    /// Counts one failure (and retry) of the watch of `kind`.
    pub fn watch_restarted(&self, kind: &str) {
        self.inner.watch_restarts.with_label_values(&[kind]).inc();
    }

    /// Watch failures of `kind` so far (tests).
    pub fn watch_restarts(&self, kind: &str) -> u64 {
        self.inner.watch_restarts.with_label_values(&[kind]).get()
    }

    /// Sets `backup_maker_leader` to 1 (leading, or leader election off) or 0 (standby).
    pub fn set_leader(&self, leader: bool) {
        self.inner.leader.set(i64::from(leader));
    }

    /// For tests/e2e: total api writes recorded so far (sum over labels).
    pub fn api_writes_total(&self) -> u64 {
        self.inner
            .api_writes
            .collect()
            .iter()
            .flat_map(|mf| mf.get_metric())
            .map(|m| m.get_counter().get_value() as u64)
            .sum()
    }
}

/// Observes a reconcile's duration when dropped, so early returns and `?` are timed too.
#[must_use = "the duration is observed when the timer is dropped"]
pub struct ReconcileTimer {
    histogram: Histogram,
    start: Instant,
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        self.histogram.observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::{Exposition, parse};

    fn scrape(registry: &Registry) -> Exposition {
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&registry.gather())
            .unwrap();
        parse(&text).unwrap()
    }

    #[test]
    fn reconcile_outcomes_are_counted_by_result_and_reason() {
        let r = Registry::new();
        let m = ControllerMetrics::new("scheduled-controller", &r);
        m.reconcile_succeeded();
        m.reconcile_succeeded();
        m.reconcile_failed("TemplateRender");
        let e = scrape(&r);
        let c = [("controller", "scheduled-controller")];
        assert_eq!(
            e.value(RECONCILE_TOTAL, &[c[0], ("result", "success")]),
            Some(2.0)
        );
        assert_eq!(
            e.value(RECONCILE_TOTAL, &[c[0], ("result", "error")]),
            Some(1.0)
        );
        assert_eq!(
            e.value(
                RECONCILE_ERRORS_TOTAL,
                &[c[0], ("reason", "TemplateRender")]
            ),
            Some(1.0)
        );
        assert_eq!(e.type_of(RECONCILE_TOTAL), Some("counter"));
        assert_eq!(e.type_of(RECONCILE_ERRORS_TOTAL), Some("counter"));
    }

    #[test]
    fn error_series_exists_at_zero_before_the_first_failure() {
        let r = Registry::new();
        let _m = ControllerMetrics::new("action-controller", &r);
        let e = scrape(&r);
        assert_eq!(
            e.value(
                RECONCILE_TOTAL,
                &[("controller", "action-controller"), ("result", "error")]
            ),
            Some(0.0)
        );
    }

    #[test]
    fn every_reconcile_family_is_scraped_at_zero_from_start_up_with_the_registered_reasons() {
        let r = Registry::new();
        let m = ControllerMetrics::new("scheduled-controller", &r);
        m.register_reasons(&["TemplateNotFound", "KubeApiError"]);
        let e = scrape(&r);
        let c = ("controller", "scheduled-controller");
        for result in ["success", "error"] {
            assert_eq!(
                e.value(RECONCILE_TOTAL, &[c, ("result", result)]),
                Some(0.0)
            );
        }
        for reason in ["TemplateNotFound", "KubeApiError"] {
            assert_eq!(
                e.value(RECONCILE_ERRORS_TOTAL, &[c, ("reason", reason)]),
                Some(0.0),
                "{reason}"
            );
        }
        assert_eq!(
            e.value("backup_maker_reconcile_duration_seconds_count", &[c]),
            Some(0.0)
        );
        assert_eq!(
            e.value(
                "backup_maker_reconcile_duration_seconds_bucket",
                &[c, ("le", "+Inf")]
            ),
            Some(0.0)
        );
        assert_eq!(e.value(LEADER, &[c]), Some(0.0));
        // A registered reason counts like any other; registering twice does not reset it.
        m.reconcile_failed("KubeApiError");
        m.register_reasons(&["KubeApiError"]);
        assert_eq!(
            scrape(&r).value(RECONCILE_ERRORS_TOTAL, &[c, ("reason", "KubeApiError")]),
            Some(1.0)
        );
    }

    #[test]
    fn without_registered_reasons_the_error_family_is_absent_until_the_first_error() {
        // What register_reasons is for: a labelled family has no series before its first label value.
        let r = Registry::new();
        let _m = ControllerMetrics::new("gpg-keygen", &r);
        assert_eq!(scrape(&r).type_of(RECONCILE_ERRORS_TOTAL), None);
    }

    #[test]
    fn timer_observes_duration_on_drop() {
        let r = Registry::new();
        let m = ControllerMetrics::new("gpg-keygen", &r);
        {
            let _t = m.reconcile_timer();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let e = scrape(&r);
        assert_eq!(e.type_of(RECONCILE_DURATION_SECONDS), Some("histogram"));
        let l = [("controller", "gpg-keygen")];
        assert_eq!(
            e.value("backup_maker_reconcile_duration_seconds_count", &l),
            Some(1.0)
        );
        assert!(
            e.value("backup_maker_reconcile_duration_seconds_sum", &l)
                .unwrap()
                >= 0.01
        );
        assert!(
            e.value(
                "backup_maker_reconcile_duration_seconds_bucket",
                &[l[0], ("le", "+Inf")]
            ) == Some(1.0)
        );
    }

    #[test]
    fn api_writes_are_labelled_and_summed() {
        let r = Registry::new();
        let m = ControllerMetrics::new("action-controller", &r);
        assert_eq!(m.api_writes_total(), 0);
        m.api_write("jobs", "create");
        m.api_write("jobs", "create");
        m.api_write("requestedbackupactions", "patch");
        assert_eq!(m.api_writes_total(), 3);
        let e = scrape(&r);
        assert_eq!(
            e.value(
                API_WRITES_TOTAL,
                &[
                    ("controller", "action-controller"),
                    ("resource", "jobs"),
                    ("verb", "create")
                ]
            ),
            Some(2.0)
        );
    }

    #[test]
    fn leader_gauge_flips() {
        let r = Registry::new();
        let m = ControllerMetrics::new("scheduled-controller", &r);
        let l = [("controller", "scheduled-controller")];
        assert_eq!(scrape(&r).value(LEADER, &l), Some(0.0));
        m.set_leader(true);
        assert_eq!(scrape(&r).value(LEADER, &l), Some(1.0));
        assert_eq!(scrape(&r).type_of(LEADER), Some("gauge"));
        m.set_leader(false);
        assert_eq!(scrape(&r).value(LEADER, &l), Some(0.0));
    }

    #[test]
    fn two_controllers_share_one_registry() {
        let r = Registry::new();
        let a = ControllerMetrics::new("scheduled-controller", &r);
        let b = ControllerMetrics::new("action-controller", &r);
        a.reconcile_succeeded();
        b.reconcile_failed("Conflict");
        let e = scrape(&r);
        assert_eq!(
            e.value(
                RECONCILE_TOTAL,
                &[
                    ("controller", "scheduled-controller"),
                    ("result", "success")
                ]
            ),
            Some(1.0)
        );
        assert_eq!(
            e.value(
                RECONCILE_TOTAL,
                &[("controller", "action-controller"), ("result", "error")]
            ),
            Some(1.0)
        );
        // Each counter is counted once per controller, not merged across them.
        assert_eq!(a.api_writes_total(), 0);
    }

    #[test]
    fn registering_the_same_controller_twice_does_not_panic() {
        let r = Registry::new();
        let _a = ControllerMetrics::new("x", &r);
        let b = ControllerMetrics::new("x", &r);
        b.api_write("jobs", "create");
        assert_eq!(b.api_writes_total(), 1);
    }
}
