//! `batch/v1` Job and CronJob: defaulting, the selector the apiserver generates, create
//! validation of the pod template and schedule, and Job status validation (recordings a1, a2,
//! b1-b4, b7; `pkg/apis/batch/validation` of kube-apiserver 1.36).

use serde_json::{Map, Value, json};

use super::cron;
use super::field::FieldError;
use super::pod;

pub(crate) const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub(crate) const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
const LEGACY_JOB_NAME_LABEL: &str = "job-name";
const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";

fn map_at<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v[key].is_object() {
        v[key] = json!({});
    }
    match v.get_mut(key).and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable!("just made an object"),
    }
}

fn default_key(m: &mut Map<String, Value>, key: &str, value: Value) {
    if m.get(key).is_none_or(Value::is_null) {
        m.insert(key.to_owned(), value);
    }
}

/// `generateSelector`: the job-name / controller-uid labels on the template and the selector.
fn generate_selector(job: &mut Value, name: &str, uid: &str) {
    let template_meta = map_at(&mut job["spec"]["template"], "metadata");
    if !template_meta.get("labels").is_some_and(Value::is_object) {
        template_meta.insert("labels".into(), json!({}));
    }
    if let Some(labels) = template_meta
        .get_mut("labels")
        .and_then(Value::as_object_mut)
    {
        for key in [LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL] {
            default_key(labels, key, json!(name));
        }
        for key in [LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL] {
            default_key(labels, key, json!(uid));
        }
    }
    let selector = map_at(&mut job["spec"], "selector");
    if !selector.get("matchLabels").is_some_and(Value::is_object) {
        selector.insert("matchLabels".into(), json!({}));
    }
    if let Some(m) = selector
        .get_mut("matchLabels")
        .and_then(Value::as_object_mut)
    {
        default_key(m, CONTROLLER_UID_LABEL, json!(uid));
    }
}

/// `SetDefaults_Job` (+ the selector generated on create when `manualSelector` is not true).
pub(crate) fn default_job(job: &mut Value, create: Option<(&str, &str)>) {
    if !job["spec"].is_object() {
        job["spec"] = json!({});
    }
    {
        let spec = map_at(job, "spec");
        let completions_unset = spec.get("completions").is_none_or(Value::is_null);
        if completions_unset && spec.get("parallelism").is_none_or(Value::is_null) {
            spec.insert("completions".into(), json!(1));
        }
        default_key(spec, "parallelism", json!(1));
        let backoff = if spec
            .get("backoffLimitPerIndex")
            .is_some_and(|v| !v.is_null())
        {
            i32::MAX
        } else {
            6
        };
        default_key(spec, "backoffLimit", json!(backoff));
        default_key(spec, "completionMode", json!("NonIndexed"));
        default_key(spec, "suspend", json!(false));
        let replacement = if spec.get("podFailurePolicy").is_some_and(|v| !v.is_null()) {
            "Failed"
        } else {
            "TerminatingOrFailed"
        };
        default_key(spec, "podReplacementPolicy", json!(replacement));
        default_key(spec, "manualSelector", json!(false));
    }
    if let Some((name, uid)) = create
        && job["spec"]["manualSelector"] != true
    {
        generate_selector(job, name, uid);
    }
    if job["spec"]["template"].is_object() {
        pod::default_template(&mut job["spec"]["template"]);
    }
    // An unlabelled Job takes its template's labels.
    let template_labels = job["spec"]["template"]["metadata"]["labels"].clone();
    let job_labels_empty = job["metadata"]["labels"]
        .as_object()
        .is_none_or(Map::is_empty);
    if job_labels_empty && template_labels.as_object().is_some_and(|l| !l.is_empty()) {
        map_at(job, "metadata").insert("labels".into(), template_labels);
    }
    if !job["status"].is_object() {
        job["status"] = json!({});
    }
    // JobCondition's probe/transition times are not `omitempty`: absent reads back as null.
    if let Some(conditions) = job
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
    {
        for c in conditions.iter_mut().filter_map(Value::as_object_mut) {
            c.entry("lastProbeTime").or_insert(Value::Null);
            c.entry("lastTransitionTime").or_insert(Value::Null);
        }
    }
}

/// `SetDefaults_CronJob`; the job template gets `metadata: {}` and pod template defaults but
/// none of the Job defaults (those come when the CronJob controller creates a Job).
pub(crate) fn default_cronjob(cj: &mut Value) {
    if !cj["spec"].is_object() {
        cj["spec"] = json!({});
    }
    let spec = map_at(cj, "spec");
    default_key(spec, "concurrencyPolicy", json!("Allow"));
    default_key(spec, "suspend", json!(false));
    default_key(spec, "successfulJobsHistoryLimit", json!(3));
    default_key(spec, "failedJobsHistoryLimit", json!(1));
    let template = spec.entry("jobTemplate").or_insert_with(|| json!({}));
    if template.is_object() {
        map_at(template, "metadata");
        let job_spec = map_at(template, "spec");
        let pod_template = job_spec.entry("template").or_insert_with(|| json!({}));
        if pod_template.is_object() {
            map_at(pod_template, "metadata");
            pod::default_template(pod_template);
        }
    }
    if !cj["status"].is_object() {
        cj["status"] = json!({});
    }
}

/// Pod template checks a Job needs (`restartPolicy` must be `OnFailure` or `Never`).
fn validate_job_template(template: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let field = format!("{path}.spec.restartPolicy");
    match template["spec"]["restartPolicy"].as_str() {
        None | Some("") => errors.push(FieldError::required(
            &field,
            "valid values: \"OnFailure\", \"Never\"",
        )),
        Some("OnFailure" | "Never") => {}
        Some(other) => errors.push(FieldError::not_supported(
            &field,
            json!(other),
            &["OnFailure", "Never"],
        )),
    }
}

/// Counts a Job spec may not set below zero (`ValidateNonnegativeField` in the apiserver: no recording shows
/// them, so the strictest real behaviour is assumed, with the apiserver's own wording).
fn validate_job_spec_counts(spec: &Value, path: &str, errors: &mut Vec<FieldError>) {
    for field in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        if let Some(n) = spec[field].as_i64()
            && n < 0
        {
            errors.push(FieldError::invalid(
                &format!("{path}.{field}"),
                json!(n),
                "must be greater than or equal to 0",
            ));
        }
    }
    if let Some(n) = spec["activeDeadlineSeconds"].as_i64()
        && n <= 0
    {
        errors.push(FieldError::invalid(
            &format!("{path}.activeDeadlineSeconds"),
            json!(n),
            "must be greater than 0",
        ));
    }
}

/// Job create/update validation of the parts the fake checks.
pub(crate) fn validate_job(job: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    validate_job_spec_counts(&job["spec"], "spec", &mut errors);
    validate_job_template(&job["spec"]["template"], "spec.template", &mut errors);
    errors
}

/// CronJob create/update validation: schedule, time zone, template, name length on create.
pub(crate) fn validate_cronjob(cj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let spec = &cj["spec"];
    match spec["schedule"].as_str().unwrap_or("") {
        "" => errors.push(FieldError::required("spec.schedule", "")),
        schedule => {
            if let Err(e) = cron::parse_standard(schedule) {
                errors.push(FieldError::invalid("spec.schedule", json!(schedule), &e));
            }
            let allow_tz = old.is_some_and(|o| {
                o["spec"]["schedule"]
                    .as_str()
                    .is_some_and(|s| s.contains("TZ"))
            });
            if schedule.contains("TZ") {
                let detail = if !allow_tz {
                    Some("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
                } else if !spec["timeZone"].is_null() {
                    Some("cannot use both timeZone field and TZ or CRON_TZ in schedule")
                } else {
                    None
                };
                if let Some(detail) = detail {
                    errors.push(FieldError::invalid(
                        "spec.schedule",
                        json!(schedule),
                        detail,
                    ));
                }
            }
        }
    }
    let zone_changed = old.is_none_or(|o| o["spec"]["timeZone"] != spec["timeZone"]);
    if zone_changed
        && let Some(zone) = spec["timeZone"].as_str()
        && let Some(problem) = cron::time_zone_problem(zone)
    {
        errors.push(FieldError::invalid("spec.timeZone", json!(zone), &problem));
    }
    for field in [
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
        "startingDeadlineSeconds",
    ] {
        if let Some(n) = spec[field].as_i64()
            && n < 0
        {
            errors.push(FieldError::invalid(
                &format!("spec.{field}"),
                json!(n),
                "must be greater than or equal to 0",
            ));
        }
    }
    validate_job_spec_counts(
        &spec["jobTemplate"]["spec"],
        "spec.jobTemplate.spec",
        &mut errors,
    );
    validate_job_template(
        &spec["jobTemplate"]["spec"]["template"],
        "spec.jobTemplate.spec.template",
        &mut errors,
    );
    if old.is_none()
        && let Some(name) = cj["metadata"]["name"].as_str()
        && name.len() > 52
    {
        errors.push(FieldError::invalid(
            "metadata.name",
            json!(name),
            "must be no more than 52 characters",
        ));
    }
    errors
}

fn condition_true(job: &Value, kind: &str) -> bool {
    job["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn time(v: &Value) -> Option<jiff::Timestamp> {
    v.as_str().and_then(|s| s.parse().ok())
}

/// `ValidateJobStatusUpdate` with the options `getStatusValidationOptions` of 1.36 picks:
/// most rules apply only when the fields they look at change in this update.
pub(crate) fn validate_job_status_update(new: &Value, old: &Value) -> Vec<FieldError> {
    let mut e = Vec::new();
    let (ns, os) = (&new["status"], &old["status"]);
    let complete = |j| condition_true(j, "Complete");
    let failed = |j| condition_true(j, "Failed");
    let failure_target = |j| condition_true(j, "FailureTarget");
    let success_met = |j| condition_true(j, "SuccessCriteriaMet");
    let finished = |j| complete(j) || failed(j);
    let complete_changed = complete(new) != complete(old);
    let failed_changed = failed(new) != failed(old);
    let finished_changed = finished(new) != finished(old);
    let success_changed = success_met(new) != success_met(old);
    let target_changed = failure_target(new) != failure_target(old);
    let active_changed = ns["active"] != os["active"];
    let start_changed = ns["startTime"] != os["startTime"];
    let completion_changed = ns["completionTime"] != os["completionTime"];
    let uncounted_changed = ns["uncountedTerminatedPods"] != os["uncountedTerminatedPods"];
    let suspended = new["spec"]["suspend"] == true;
    let zero_completions = new["spec"]["completions"] == 0;

    for field in ["active", "succeeded", "failed", "ready", "terminating"] {
        let v = int(&ns[field]);
        if v < 0 {
            e.push(FieldError::invalid(
                &format!("status.{field}"),
                json!(v),
                "must be greater than or equal to 0",
            ));
        }
    }
    if (complete_changed || failed_changed) && complete(new) && failed(new) {
        e.push(FieldError::invalid_no_value(
            "status.conditions",
            "cannot set Complete=True and Failed=true conditions",
        ));
    }
    if (complete_changed || target_changed) && complete(new) && failure_target(new) {
        e.push(FieldError::invalid_no_value(
            "status.conditions",
            "cannot set Complete=True and FailureTarget=true conditions",
        ));
    }
    let completion = &ns["completionTime"];
    if (complete_changed || completion_changed) && !completion.is_null() && !complete(new) {
        e.push(FieldError::invalid(
            "status.completionTime",
            completion.clone(),
            "cannot set completionTime when there is no Complete=True condition",
        ));
    }
    if (complete_changed || completion_changed) && completion.is_null() && complete(new) {
        e.push(FieldError::required(
            "status.completionTime",
            "completionTime is required for Complete jobs",
        ));
    }
    if (start_changed || completion_changed)
        && let (Some(start), Some(done)) = (time(&ns["startTime"]), time(completion))
        && done < start
    {
        e.push(FieldError::invalid(
            "status.completionTime",
            completion.clone(),
            "completionTime cannot be set before startTime",
        ));
    }
    if (failed_changed) && failed(new) && !failure_target(new) {
        e.push(FieldError::invalid_no_value(
            "status.conditions",
            "cannot set Failed=True condition without the FailureTarget=true condition",
        ));
    }
    if (complete_changed || success_changed) && complete(new) && !success_met(new) {
        e.push(FieldError::invalid_no_value(
            "status.conditions",
            "cannot set Complete=True condition without the SuccessCriteriaMet=true condition",
        ));
    }
    if (finished_changed || active_changed) && int(&ns["active"]) > 0 && finished(new) {
        e.push(FieldError::invalid(
            "status.active",
            ns["active"].clone(),
            "active>0 is invalid for finished job",
        ));
    }
    if (finished_changed || start_changed)
        && !(suspended && zero_completions)
        && ns["startTime"].is_null()
        && finished(new)
    {
        e.push(FieldError::required(
            "status.startTime",
            "startTime is required for finished job",
        ));
    }
    let uncounted = &ns["uncountedTerminatedPods"];
    let uncounted_len = ["succeeded", "failed"]
        .iter()
        .filter_map(|k| uncounted[*k].as_array())
        .map(Vec::len)
        .sum::<usize>();
    if (finished_changed || uncounted_changed) && finished(new) && uncounted_len > 0 {
        e.push(FieldError::invalid(
            "status.uncountedTerminatedPods",
            uncounted.clone(),
            "uncountedTerminatedPods needs to be empty for finished job",
        ));
    }
    if (finished_changed || ns["terminating"] != os["terminating"])
        && int(&ns["terminating"]) > 0
        && finished(new)
    {
        e.push(FieldError::invalid(
            "status.terminating",
            ns["terminating"].clone(),
            "terminating>0 is invalid for finished job",
        ));
    }
    if (active_changed || ns["ready"] != os["ready"])
        && !ns["ready"].is_null()
        && int(&ns["ready"]) > int(&ns["active"])
    {
        e.push(FieldError::invalid(
            "status.ready",
            ns["ready"].clone(),
            "cannot set more ready pods than active",
        ));
    }
    if success_met(new) && failed(new) {
        e.push(FieldError::invalid_no_value(
            "status.conditions",
            "cannot set SuccessCriteriaMet=True and Failed=true conditions",
        ));
    }
    if success_met(new) && failure_target(new) {
        e.push(FieldError::invalid_no_value(
            "status.conditions",
            "cannot set SuccessCriteriaMet=True and FailureTarget=true conditions",
        ));
    }
    // ValidateJobStatusUpdate: transitions against the stored Job.
    for kind in ["Failed", "Complete", "FailureTarget"] {
        if condition_true(old, kind) && !condition_true(new, kind) {
            e.push(FieldError::invalid_no_value(
                "status.conditions",
                &format!("cannot disable the terminal {kind}=True condition"),
            ));
        }
    }
    if int(&ns["failed"]) < int(&os["failed"]) {
        e.push(FieldError::invalid(
            "status.failed",
            ns["failed"].clone(),
            "cannot decrease the failed counter",
        ));
    }
    let elastic = new["spec"]["completionMode"] == "Indexed"
        && new["spec"]["completions"] == new["spec"]["parallelism"];
    if !elastic && int(&ns["succeeded"]) < int(&os["succeeded"]) {
        e.push(FieldError::invalid(
            "status.succeeded",
            ns["succeeded"].clone(),
            "cannot decrease the succeeded counter",
        ));
    }
    if !completion.is_null() && !os["completionTime"].is_null() && completion_changed {
        e.push(FieldError::invalid(
            "status.completionTime",
            completion.clone(),
            "field is immutable",
        ));
    }
    if !os["startTime"].is_null() && start_changed && !suspended {
        e.push(FieldError::invalid(
            "status.startTime",
            ns["startTime"].clone(),
            "field is immutable for unsuspended job once set",
        ));
    }
    if success_met(old) && !success_met(new) {
        e.push(FieldError::invalid_no_value(
            "status.conditions",
            "cannot disable the SuccessCriteriaMet=True condition",
        ));
    }
    if complete(old) && !success_met(old) && success_met(new) {
        e.push(FieldError::invalid_no_value(
            "status.conditions",
            "cannot set SuccessCriteriaMet=True for Job already has Complete=true conditions",
        ));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_defaults_include_generated_selector_and_labels() {
        let mut job = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {
            "containers": [{"name": "main", "image": "busybox"}], "restartPolicy": "Never"}}}});
        default_job(&mut job, Some(("j", "u1")));
        assert_eq!(
            job["spec"]["selector"]["matchLabels"][CONTROLLER_UID_LABEL],
            "u1"
        );
        assert_eq!(job["metadata"]["labels"]["job-name"], "j");
        assert_eq!(
            job["spec"]["template"]["metadata"]["labels"]["controller-uid"],
            "u1"
        );
        assert_eq!(job["spec"]["backoffLimit"], 6);
        assert_eq!(job["status"], json!({}));
    }

    #[test]
    fn a_labelled_job_keeps_only_its_own_labels() {
        let mut job = json!({"metadata": {"name": "j", "labels": {"app": "x"}}, "spec": {}});
        default_job(&mut job, Some(("j", "u1")));
        assert_eq!(job["metadata"]["labels"], json!({"app": "x"}));
    }

    #[test]
    fn suspended_jobs_may_change_start_time() {
        let old =
            json!({"spec": {"suspend": true}, "status": {"startTime": "2026-01-01T00:00:00Z"}});
        let new = json!({"spec": {"suspend": true}, "status": {}});
        assert!(validate_job_status_update(&new, &old).is_empty());
    }
}
