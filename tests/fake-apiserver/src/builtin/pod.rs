//! Pod spec defaulting (for Pods and for the pod templates inside Jobs and CronJobs) and what
//! the default admission plugins add to a new Pod (recordings a1, a2, b5, b6).

use rand::Rng as _;
use serde_json::{Map, Value, json};

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

fn default_key(map: &mut Map<String, Value>, key: &str, value: Value) {
    if map.get(key).is_none_or(Value::is_null) {
        map.insert(key.to_owned(), value);
    }
}

/// `imagePullPolicy` default: `Always` for `:latest` or untagged images, else `IfNotPresent`.
fn pull_policy(image: &str) -> &'static str {
    let without_digest = image.split('@').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn default_probe(probe: &mut Value) {
    if let Some(p) = obj(probe) {
        default_key(p, "timeoutSeconds", json!(1));
        default_key(p, "periodSeconds", json!(10));
        default_key(p, "successThreshold", json!(1));
        default_key(p, "failureThreshold", json!(3));
    }
}

fn default_container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or("").to_owned();
    let Some(m) = obj(c) else { return };
    default_key(m, "terminationMessagePath", json!("/dev/termination-log"));
    default_key(m, "terminationMessagePolicy", json!("File"));
    if !image.is_empty() {
        default_key(m, "imagePullPolicy", json!(pull_policy(&image)));
    }
    default_key(m, "resources", json!({}));
    if let Some(Value::Array(ports)) = m.get_mut("ports") {
        for port in ports.iter_mut().filter_map(obj) {
            default_key(port, "protocol", json!("TCP"));
        }
    }
    if let Some(Value::Array(env)) = m.get_mut("env") {
        for var in env {
            if let Some(field_ref) = var
                .pointer_mut("/valueFrom/fieldRef")
                .and_then(Value::as_object_mut)
            {
                default_key(field_ref, "apiVersion", json!("v1"));
            }
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = m.get_mut(probe) {
            default_probe(p);
        }
    }
}

/// `SetDefaults_PodSpec` and its nested defaults. `restart_policy` is `false` for Job and
/// CronJob templates: the apiserver leaves it unset there and validation then requires it.
pub(crate) fn default_pod_spec(spec: &mut Value, restart_policy: bool) {
    let Some(m) = obj(spec) else { return };
    for list in ["containers", "initContainers"] {
        if let Some(Value::Array(cs)) = m.get_mut(list) {
            cs.iter_mut().for_each(default_container);
        }
    }
    if restart_policy {
        default_key(m, "restartPolicy", json!("Always"));
    }
    default_key(m, "terminationGracePeriodSeconds", json!(30));
    default_key(m, "dnsPolicy", json!("ClusterFirst"));
    default_key(m, "securityContext", json!({}));
    default_key(m, "schedulerName", json!("default-scheduler"));
    if let Some(Value::Array(volumes)) = m.get_mut("volumes") {
        for v in volumes.iter_mut().filter_map(obj) {
            for source in ["secret", "configMap", "projected", "downwardAPI"] {
                if let Some(s) = v.get_mut(source).and_then(Value::as_object_mut) {
                    default_key(s, "defaultMode", json!(420));
                }
            }
        }
    }
}

/// A pod template (`metadata` + `spec`) inside a workload.
pub(crate) fn default_template(template: &mut Value) {
    if !template.is_object() {
        return;
    }
    if !template["spec"].is_object() {
        template["spec"] = json!({});
    }
    default_pod_spec(&mut template["spec"], false);
}

/// QoS class from container resources (`qos.GetPodQOS`, simplified to cpu and memory).
fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| spec[*l].as_array())
        .flatten()
        .collect();
    let any = containers.iter().any(|c| {
        ["requests", "limits"].iter().any(|k| {
            c["resources"][*k]
                .as_object()
                .is_some_and(|m| !m.is_empty())
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = containers.iter().all(|c| {
        ["cpu", "memory"].iter().all(|r| {
            let limit = &c["resources"]["limits"][*r];
            let request = &c["resources"]["requests"][*r];
            !limit.is_null() && (request.is_null() || request == limit)
        })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::thread_rng();
    (0..5)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// On Pod create: `SetDefaults_Pod` plus the default admission plugins (ServiceAccount with
/// the `kube-api-access-*` token volume, DefaultTolerationSeconds, Priority) and the status the
/// strategy sets (`Pending` + QoS class). `keep_status` keeps a seeded status.
pub(crate) fn admit_new_pod(pod: &mut Value, keep_status: bool) {
    if !pod["spec"].is_object() {
        pod["spec"] = json!({});
    }
    default_pod_spec(&mut pod["spec"], true);
    let qos = qos_class(&pod["spec"]);
    let Some(spec) = obj(&mut pod["spec"]) else {
        return;
    };
    default_key(spec, "enableServiceLinks", json!(true));
    let sa = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_owned();
    spec.insert("serviceAccountName".into(), json!(sa));
    spec.insert("serviceAccount".into(), json!(sa));
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if automount {
        let volume = format!("kube-api-access-{}", random_suffix());
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(list) = volumes.as_array_mut() {
            list.push(json!({"name": volume, "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ], "defaultMode": 420}}));
        }
        for list in ["containers", "initContainers"] {
            for c in spec
                .get_mut(list)
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
                .filter_map(obj)
            {
                let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
                if let Some(m) = mounts.as_array_mut() {
                    m.push(json!({"name": volume, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}));
                }
            }
        }
    }
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Some(list) = tolerations.as_array_mut() {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            if !list.iter().any(|t| t["key"] == key) {
                list.push(json!({"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
            }
        }
    }
    default_key(spec, "priority", json!(0));
    default_key(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    if !keep_status || !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    if let Some(status) = obj(&mut pod["status"]) {
        default_key(status, "phase", json!("Pending"));
        default_key(status, "qosClass", json!(qos));
    }
}

/// Pod status defaults on every write: container statuses always carry the struct fields the
/// apiserver encodes even when empty (`state`, `lastState`, `ready`, `restartCount`, images).
pub(crate) fn default_pod_status(pod: &mut Value) {
    for list in ["containerStatuses", "initContainerStatuses"] {
        let Some(statuses) = pod
            .pointer_mut(&format!("/status/{list}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for s in statuses.iter_mut().filter_map(obj) {
            default_key(s, "state", json!({}));
            default_key(s, "lastState", json!({}));
            default_key(s, "ready", json!(false));
            default_key(s, "restartCount", json!(0));
            default_key(s, "image", json!(""));
            default_key(s, "imageID", json!(""));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_is_always_only_for_latest_or_untagged_images() {
        assert_eq!(pull_policy("busybox"), "Always");
        assert_eq!(pull_policy("busybox:latest"), "Always");
        assert_eq!(pull_policy("registry:5000/busybox"), "Always");
        assert_eq!(pull_policy("registry:5000/busybox:1.36"), "IfNotPresent");
        assert_eq!(pull_policy("busybox@sha256:abc"), "IfNotPresent");
    }

    #[test]
    fn qos_follows_requests_and_limits() {
        assert_eq!(qos_class(&json!({"containers": [{}]})), "BestEffort");
        let limits = json!({"cpu": "1", "memory": "1Gi"});
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"limits": limits}}]})),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&json!({"containers": [{"resources": {"requests": {"cpu": "1"}}}]})),
            "Burstable"
        );
    }
}
