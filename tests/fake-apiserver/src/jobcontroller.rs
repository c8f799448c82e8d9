//! The parts of kube-controller-manager's job and cronjob controllers a cluster without a
//! kubelet shows (recordings a1, b5, b6, b7). The job controller creates a Pod per missing
//! completion, tracks it with the `batch.kubernetes.io/job-tracking` finalizer, and once a test
//! (standing in for the kubelet) sets the Pod's phase, writes the recorded status sequence:
//! `uncountedTerminatedPods` + `SuccessCriteriaMet`/`FailureTarget`, finalizer removal, then the
//! counters + `Complete`/`Failed`. The cronjob controller only runs when asked
//! ([`fire_cronjob`]), and keeps the CronJob's `active` and `lastSuccessfulTime` current.
//!
//! Everything here writes through the store as `kube-controller-manager`, without counting
//! writes (they are not the tested controllers' writes). `kcm` runs it off the request path.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::ResourceInfo;
use crate::errors::ApiError;
use crate::namespaces::MANAGER;
use crate::store::{DeleteOptions, ObjKey, Store, Target};

/// The finalizer the job controller puts on its Pods until it has counted them.
pub(crate) const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
const JOB_CONTROLLER: &str = "kubernetes.io/job-controller";
const SCHEDULED_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

fn resource(store: &Store, group: &str, plural: &str) -> Option<ResourceInfo> {
    store.registry.by_group_plural(group, plural).cloned()
}

fn condition_true(obj: &Value, kind: &str) -> bool {
    obj["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == kind && c["status"] == "True")
    })
}

fn finished(job: &Value) -> bool {
    condition_true(job, "Complete") || condition_true(job, "Failed")
}

fn controller_of(obj: &Value) -> Option<&Value> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)
}

/// The (namespace, name) of the Job controlling a Pod, or of the CronJob controlling a Job.
pub(crate) fn owner(obj: &Value, kind: &str) -> Option<(String, String)> {
    let owner = controller_of(obj).filter(|r| r["kind"] == kind)?;
    Some((
        obj["metadata"]["namespace"].as_str()?.to_owned(),
        owner["name"].as_str()?.to_owned(),
    ))
}

fn has_tracking_finalizer(pod: &Value) -> bool {
    pod["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == TRACKING_FINALIZER))
}

fn terminal(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

fn deleting(obj: &Value) -> bool {
    !obj["metadata"]["deletionTimestamp"].is_null()
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn set_or_omit(status: &mut Value, field: &str, n: i64) {
    match status.as_object_mut() {
        Some(m) if n == 0 => {
            m.remove(field);
        }
        Some(m) => {
            m.insert(field.to_owned(), json!(n));
        }
        None => {}
    }
}

fn condition(kind: &str, reason: &str, message: &str, now: &str) -> Value {
    json!({"type": kind, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
           "reason": reason, "message": message})
}

fn push_condition(status: &mut Value, c: Value) {
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    if let Some(list) = status["conditions"].as_array_mut() {
        list.retain(|x| x["type"] != c["type"]);
        list.push(c);
    }
}

/// Pods controlled by the Job with this uid, with their keys.
fn pods_of(store: &Store, pods: &ResourceInfo, ns: &str, uid: &str) -> Vec<(ObjKey, Value)> {
    store
        .list(pods, Some(ns))
        .filter(|(_, p)| controller_of(p).is_some_and(|r| r["uid"] == uid))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn remove_tracking_finalizer(store: &mut Store, pods: &ResourceInfo, key: &ObjKey) {
    let Some(mut pod) = store.get(key).cloned() else {
        return;
    };
    if !has_tracking_finalizer(&pod) {
        return;
    }
    if let Some(f) = pod["metadata"]["finalizers"].as_array_mut() {
        f.retain(|x| x != TRACKING_FINALIZER);
    }
    let _ = store.update(pods, key, pod, Target::Main, Some(MANAGER));
}

/// A core v1 Event about `obj`, as client-go's legacy recorder in kube-controller-manager
/// writes it (`source.component` is the controller's name).
fn record_event(
    store: &mut Store,
    obj: &Value,
    component: &str,
    type_: &str,
    reason: &str,
    message: &str,
) {
    let Some(events) = resource(store, "", "events") else {
        return;
    };
    let meta = &obj["metadata"];
    let ns = meta["namespace"].as_str().unwrap_or("default").to_owned();
    let name = meta["name"].as_str().unwrap_or("");
    let nanos = jiff::Timestamp::now().as_nanosecond();
    let now = crate::store::now();
    let event = json!({
        "metadata": {"name": format!("{name}.{nanos:x}"), "namespace": ns},
        "involvedObject": {"kind": obj["kind"], "namespace": ns, "name": name, "uid": meta["uid"],
                           "apiVersion": obj["apiVersion"], "resourceVersion": meta["resourceVersion"]},
        "reason": reason, "message": message, "source": {"component": component},
        "firstTimestamp": now, "lastTimestamp": now, "count": 1, "type": type_,
        "eventTime": null, "reportingComponent": component, "reportingInstance": "",
    });
    let _ = store.create(&events, &ns, event, Some(MANAGER), false);
}

fn write_status(store: &mut Store, jobs: &ResourceInfo, key: &ObjKey, status: Value) {
    let Some(mut job) = store.get(key).cloned() else {
        return;
    };
    job["status"] = status;
    // A rejection here would be a bug in this controller; the store keeps the old status.
    let _ = store.update(jobs, key, job, Target::Status, Some(MANAGER));
}

fn new_pod(job: &Value, name: &str, uid: &str) -> Value {
    let template = &job["spec"]["template"];
    let mut metadata = json!({
        "generateName": format!("{name}-"),
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": uid,
                             "controller": true, "blockOwnerDeletion": true}],
        "finalizers": [TRACKING_FINALIZER],
    });
    for field in ["labels", "annotations"] {
        if template["metadata"][field].is_object() {
            metadata[field] = template["metadata"][field].clone();
        }
    }
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]})
}

/// One pass of the job controller over one Job. Returns when it must look again by itself
/// (the `activeDeadlineSeconds` deadline of a running Job).
pub(crate) fn sync_job(store: &mut Store, ns: &str, name: &str) -> Option<jiff::Timestamp> {
    let jobs = resource(store, "batch", "jobs")?;
    let pods = resource(store, "", "pods")?;
    let key = ObjKey::new(&jobs, ns, name);
    let Some(job) = store.get(&key).cloned() else {
        release_orphans(store, &pods, ns, name);
        return None;
    };
    let uid = job["metadata"]["uid"].as_str().unwrap_or("").to_owned();
    let owned = pods_of(store, &pods, ns, &uid);
    let managed_by = job["spec"]["managedBy"].as_str().unwrap_or(JOB_CONTROLLER);
    if managed_by != JOB_CONTROLLER {
        return None;
    }
    if deleting(&job) || finished(&job) {
        for (pod_key, pod) in &owned {
            remove_tracking_finalizer(store, &pods, pod_key);
            if !terminal(pod) && !deleting(pod) {
                let _ = store.delete(&pods, pod_key, &DeleteOptions::default());
            }
        }
        return None;
    }
    if job["spec"]["suspend"] == true {
        return None;
    }
    let spec = &job["spec"];
    let now_ts = jiff::Timestamp::now();
    let now = crate::store::now();
    let mut status = job["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let start = status["startTime"]
        .as_str()
        .and_then(|s| s.parse::<jiff::Timestamp>().ok());
    let deadline = spec["activeDeadlineSeconds"]
        .as_i64()
        .zip(start)
        .and_then(|(secs, start)| {
            start
                .checked_add(jiff::SignedDuration::from_secs(secs))
                .ok()
        });

    let mut newly_succeeded = Vec::new();
    let mut newly_failed = Vec::new();
    let mut active = Vec::new();
    for (pod_key, pod) in &owned {
        let pod_uid = pod["metadata"]["uid"].clone();
        if has_tracking_finalizer(pod) && (terminal(pod) || deleting(pod)) {
            if pod["status"]["phase"] == "Succeeded" {
                newly_succeeded.push((pod_key.clone(), pod_uid));
            } else {
                newly_failed.push((pod_key.clone(), pod_uid));
            }
        } else if !terminal(pod) && !deleting(pod) {
            active.push((pod_key.clone(), pod.clone()));
        }
    }
    let succeeded = int(&status["succeeded"]) + newly_succeeded.len() as i64;
    let failed = int(&status["failed"]) + newly_failed.len() as i64;
    let completions = spec["completions"].as_i64();
    let parallelism = spec["parallelism"].as_i64().unwrap_or(1);
    let backoff_limit = spec["backoffLimit"].as_i64().unwrap_or(6);

    let mut pending_events: Vec<(&str, &str, String)> = Vec::new();
    let failure = if failed > backoff_limit {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        ))
    } else if deadline.is_some_and(|d| d <= now_ts) {
        Some((
            "DeadlineExceeded",
            "Job was active longer than specified deadline",
        ))
    } else {
        None
    };
    let success = failure.is_none()
        && match completions {
            Some(n) => succeeded >= n,
            None => succeeded > 0 && active.is_empty(),
        };

    if failure.is_some() {
        for (pod_key, _) in active.drain(..) {
            remove_tracking_finalizer(store, &pods, &pod_key);
            let _ = store.delete(&pods, &pod_key, &DeleteOptions::default());
        }
    } else if !success {
        // client-go's recorder sends Events asynchronously: they land after the status write.
        let mut created_pods = Vec::new();
        let wanted = match completions {
            Some(n) => parallelism.min(n - succeeded),
            None => parallelism,
        };
        for _ in (active.len() as i64)..wanted {
            let pod = new_pod(&job, name, &uid);
            match store.create(&pods, ns, pod, Some(MANAGER), false) {
                Ok(created) => {
                    let message = format!(
                        "Created pod: {}",
                        created["metadata"]["name"].as_str().unwrap_or("")
                    );
                    created_pods.push(message);
                    let pod_key = ObjKey::new(
                        &pods,
                        ns,
                        created["metadata"]["name"].as_str().unwrap_or(""),
                    );
                    active.push((pod_key, created));
                }
                Err(_) => break,
            }
        }
        for message in created_pods {
            pending_events.push(("Normal", "SuccessfulCreate", message));
        }
    }
    let ready = active
        .iter()
        .filter(|(_, p)| {
            p["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
        })
        .count() as i64;
    if status["startTime"].is_null() {
        status["startTime"] = json!(now);
    }
    set_or_omit(&mut status, "active", active.len() as i64);
    status["ready"] = json!(ready);
    status["terminating"] = json!(0);

    let terminated = !newly_succeeded.is_empty() || !newly_failed.is_empty();
    if terminated || success || failure.is_some() {
        // First write: the Pods are counted as uncounted-terminated, the outcome is targeted.
        let uids = |list: &[(ObjKey, Value)]| list.iter().map(|(_, u)| u.clone()).collect();
        let mut uncounted = json!({});
        if !newly_succeeded.is_empty() {
            uncounted["succeeded"] = Value::Array(uids(&newly_succeeded));
        }
        if !newly_failed.is_empty() {
            uncounted["failed"] = Value::Array(uids(&newly_failed));
        }
        status["uncountedTerminatedPods"] = uncounted;
        if success {
            push_condition(
                &mut status,
                condition(
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    &now,
                ),
            );
        }
        if let Some((reason, message)) = failure {
            push_condition(
                &mut status,
                condition("FailureTarget", reason, message, &now),
            );
        }
        write_status(store, &jobs, &key, status.clone());
        for (pod_key, _) in newly_succeeded.iter().chain(&newly_failed) {
            remove_tracking_finalizer(store, &pods, pod_key);
        }
        // Second write: counters, then the terminal condition.
        set_or_omit(&mut status, "succeeded", succeeded);
        set_or_omit(&mut status, "failed", failed);
        status["uncountedTerminatedPods"] = json!({});
        if success {
            push_condition(
                &mut status,
                condition(
                    "Complete",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                    &now,
                ),
            );
            status["completionTime"] = json!(now);
        }
        if let Some((reason, message)) = failure {
            push_condition(&mut status, condition("Failed", reason, message, &now));
        }
        write_status(store, &jobs, &key, status);
        if success {
            pending_events.push(("Normal", "Completed", "Job completed".to_owned()));
        }
        if let Some((reason, message)) = failure {
            pending_events.push(("Warning", reason, message.to_owned()));
        }
        for (type_, reason, message) in pending_events {
            record_event(store, &job, "job-controller", type_, reason, &message);
        }
        return None;
    }
    status["uncountedTerminatedPods"] = json!({});
    write_status(store, &jobs, &key, status);
    for (type_, reason, message) in pending_events {
        record_event(store, &job, "job-controller", type_, reason, &message);
    }
    deadline
}

/// Pods whose Job is gone keep no tracking finalizer (so garbage collection can remove them).
fn release_orphans(store: &mut Store, pods: &ResourceInfo, ns: &str, job_name: &str) {
    let orphans: Vec<ObjKey> = store
        .list(pods, Some(ns))
        .filter(|(_, p)| {
            has_tracking_finalizer(p)
                && controller_of(p).is_some_and(|r| r["kind"] == "Job" && r["name"] == job_name)
        })
        .map(|(k, _)| k.clone())
        .collect();
    for key in orphans {
        remove_tracking_finalizer(store, pods, &key);
    }
}

/// The cronjob controller's bookkeeping for one CronJob: drops finished or deleted Jobs from
/// `status.active`, sets `lastSuccessfulTime`, and deletes finished Jobs beyond the history limits.
pub(crate) fn sync_cronjob(store: &mut Store, ns: &str, name: &str) {
    let (Some(cronjobs), Some(jobs)) = (
        resource(store, "batch", "cronjobs"),
        resource(store, "batch", "jobs"),
    ) else {
        return;
    };
    let key = ObjKey::new(&cronjobs, ns, name);
    let Some(cj) = store.get(&key).cloned() else {
        return;
    };
    let uid = cj["metadata"]["uid"].clone();
    let owned: Vec<(ObjKey, Value)> = store
        .list(&jobs, Some(ns))
        .filter(|(_, j)| controller_of(j).is_some_and(|r| r["uid"] == uid))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let running: BTreeSet<&str> = owned
        .iter()
        .filter(|(_, j)| !finished(j))
        .filter_map(|(_, j)| j["metadata"]["uid"].as_str())
        .collect();
    let mut status = cj["status"].clone();
    if let Some(active) = status.get_mut("active").and_then(Value::as_array_mut) {
        active.retain(|r| r["uid"].as_str().is_some_and(|u| running.contains(u)));
        if active.is_empty() {
            status.as_object_mut().map(|s| s.remove("active"));
        }
    }
    let last_success = owned
        .iter()
        .filter(|(_, j)| condition_true(j, "Complete"))
        .filter_map(|(_, j)| j["status"]["completionTime"].as_str())
        .max();
    if let Some(t) = last_success
        && status["lastSuccessfulTime"]
            .as_str()
            .is_none_or(|old| old < t)
    {
        status["lastSuccessfulTime"] = json!(t);
    }
    if status != cj["status"] {
        let mut updated = cj.clone();
        updated["status"] = status;
        let _ = store.update(&cronjobs, &key, updated, Target::Status, Some(MANAGER));
    }
    for (outcome, limit) in [
        ("Complete", &cj["spec"]["successfulJobsHistoryLimit"]),
        ("Failed", &cj["spec"]["failedJobsHistoryLimit"]),
    ] {
        let Some(limit) = limit.as_u64() else {
            continue;
        };
        let mut done: Vec<&(ObjKey, Value)> = owned
            .iter()
            .filter(|(_, j)| condition_true(j, outcome))
            .collect();
        done.sort_by_key(|(_, j)| {
            j["metadata"]["creationTimestamp"]
                .as_str()
                .map(str::to_owned)
        });
        let excess = done.len().saturating_sub(limit as usize);
        for (job_key, _) in done.into_iter().take(excess) {
            let _ = store.delete(&jobs, job_key, &DeleteOptions::default());
        }
    }
}

/// What the cronjob controller does when a schedule fires at `scheduled`: honours `suspend` and
/// `concurrencyPolicy`, creates `<cronjob>-<minutes since epoch>` from the job template, and
/// records it in `status.active` / `status.lastScheduleTime`. `Ok(None)` when nothing was
/// started (suspended, or `Forbid` with a Job still running); an existing Job of the same
/// schedule time is returned as is.
pub(crate) fn fire_cronjob(
    store: &mut Store,
    ns: &str,
    name: &str,
    scheduled: jiff::Timestamp,
) -> Result<Option<Value>, ApiError> {
    let (Some(cronjobs), Some(jobs)) = (
        resource(store, "batch", "cronjobs"),
        resource(store, "batch", "jobs"),
    ) else {
        return Err(ApiError::no_route());
    };
    let key = ObjKey::new(&cronjobs, ns, name);
    let cj = store
        .get(&key)
        .cloned()
        .ok_or_else(|| ApiError::not_found("cronjobs", name))?;
    if cj["spec"]["suspend"] == true {
        return Ok(None);
    }
    // Schedules have minute resolution; the Job name counts minutes since the epoch.
    let scheduled = jiff::Timestamp::from_second(scheduled.as_second().div_euclid(60) * 60)
        .unwrap_or(scheduled);
    let job_name = format!("{name}-{}", scheduled.as_second().div_euclid(60));
    let job_key = ObjKey::new(&jobs, ns, &job_name);
    if let Some(existing) = store.get(&job_key) {
        return Ok(Some(existing.clone()));
    }
    let uid = cj["metadata"]["uid"].clone();
    let running: Vec<ObjKey> = store
        .list(&jobs, Some(ns))
        .filter(|(_, j)| controller_of(j).is_some_and(|r| r["uid"] == uid) && !finished(j))
        .map(|(k, _)| k.clone())
        .collect();
    match cj["spec"]["concurrencyPolicy"].as_str() {
        Some("Forbid") if !running.is_empty() => return Ok(None),
        Some("Replace") => {
            for k in &running {
                let _ = store.delete(&jobs, k, &DeleteOptions::default());
            }
        }
        _ => {}
    }
    let zone = cj["spec"]["timeZone"]
        .as_str()
        .and_then(|z| jiff::tz::TimeZone::get(z).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC);
    let stamp = scheduled
        .to_zoned(zone)
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
        .replace("+00:00", "Z");
    let template = &cj["spec"]["jobTemplate"];
    let mut annotations = template["metadata"]["annotations"].clone();
    if !annotations.is_object() {
        annotations = json!({});
    }
    annotations[SCHEDULED_ANNOTATION] = json!(stamp);
    let mut metadata = json!({
        "name": job_name,
        "annotations": annotations,
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": name,
                             "uid": uid, "controller": true, "blockOwnerDeletion": true}],
    });
    if template["metadata"]["labels"].is_object() {
        metadata["labels"] = template["metadata"]["labels"].clone();
    }
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata,
                     "spec": template["spec"]});
    let created = store.create(&jobs, ns, job, Some(MANAGER), false)?;
    let message = format!("Created job {job_name}");
    record_event(
        store,
        &cj,
        "cronjob-controller",
        "Normal",
        "SuccessfulCreate",
        &message,
    );
    let mut updated = store.get(&key).cloned().unwrap_or(cj);
    let reference = json!({
        "kind": "Job", "namespace": ns, "name": job_name, "apiVersion": "batch/v1",
        "uid": created["metadata"]["uid"], "resourceVersion": created["metadata"]["resourceVersion"],
    });
    if !updated["status"]["active"].is_array() {
        updated["status"]["active"] = json!([]);
    }
    if let Some(active) = updated["status"]["active"].as_array_mut() {
        active.push(reference);
    }
    updated["status"]["lastScheduleTime"] = json!(scheduled.to_string());
    store.update(&cronjobs, &key, updated, Target::Status, Some(MANAGER))?;
    Ok(Some(created))
}
