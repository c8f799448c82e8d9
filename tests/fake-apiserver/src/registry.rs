//! Which resources the fake serves, and the discovery documents describing them.
//!
//! A resource that is not registered answers 404 on every path, exactly like a cluster where
//! the CRD is not installed. That is how a test simulates "Argo Workflows is not installed".

use serde_json::{Value, json};

/// One served resource type (one group/version/plural).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group; empty for the core group (`/api/v1`).
    pub group: String,
    /// API version within the group, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `ConfigMap`.
    pub kind: String,
    /// Lower-case plural used in URLs, e.g. `configmaps`.
    pub plural: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Whether the type has a `/status` subresource (main-resource writes then ignore `.status`).
    pub has_status: bool,
}

impl ResourceInfo {
    /// A resource description; `group` is empty for core.
    pub fn new(
        group: &str,
        version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
        has_status: bool,
    ) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            namespaced,
            has_status,
        }
    }

    /// Argo Workflows' `argoproj.io/v1alpha1` `Workflow`. Not registered by default, so a test
    /// must opt in to simulate a cluster where the Workflow CRD is installed.
    pub fn argo_workflows() -> Self {
        Self::new(
            "argoproj.io",
            "v1alpha1",
            "Workflow",
            "workflows",
            true,
            true,
        )
    }

    /// `apiVersion` as written in objects: `v1` for core, `group/version` otherwise.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// Singular name as discovery reports it (lower-case kind).
    pub fn singular(&self) -> String {
        self.kind.to_lowercase()
    }

    /// The resource set every fake starts with (see the crate README for the list).
    pub fn defaults() -> Vec<Self> {
        vec![
            Self::new("", "v1", "Secret", "secrets", true, false),
            Self::new("", "v1", "ConfigMap", "configmaps", true, false),
            Self::new("", "v1", "Pod", "pods", true, true),
            Self::new("", "v1", "Event", "events", true, false),
            Self::new("", "v1", "Namespace", "namespaces", false, true),
            Self::new("", "v1", "ServiceAccount", "serviceaccounts", true, false),
            Self::new("", "v1", "PodTemplate", "podtemplates", true, false),
            Self::new("batch", "v1", "Job", "jobs", true, true),
            Self::new("batch", "v1", "CronJob", "cronjobs", true, true),
            Self::new("coordination.k8s.io", "v1", "Lease", "leases", true, false),
            Self::new("events.k8s.io", "v1", "Event", "events", true, false),
            Self::new(
                "riotkit.org",
                "v1alpha1",
                "ScheduledBackup",
                "scheduledbackups",
                true,
                true,
            ),
            Self::new(
                "riotkit.org",
                "v1alpha1",
                "RequestedBackupAction",
                "requestedbackupactions",
                true,
                true,
            ),
            Self::new(
                "riotkit.org",
                "v1alpha1",
                "ClusterBackupProcedureTemplate",
                "clusterbackupproceduretemplates",
                false,
                true,
            ),
        ]
    }
}

/// Whether a group is one of Kubernetes' built-in API groups (typed objects, served from Go
/// structs) rather than a CustomResourceDefinition's.
pub(crate) fn is_builtin_group(group: &str) -> bool {
    group.is_empty() || !group.contains('.') || group.ends_with(".k8s.io")
}

/// The set of served resources. Immutable once the server is built.
#[derive(Clone, Debug, Default)]
pub(crate) struct Registry {
    resources: Vec<ResourceInfo>,
}

impl Registry {
    /// Adds or replaces (same group and plural) a resource.
    pub(crate) fn add(&mut self, info: ResourceInfo) {
        self.resources
            .retain(|r| !(r.group == info.group && r.plural == info.plural));
        self.resources.push(info);
    }

    /// Lookup by URL parts.
    pub(crate) fn by_path(
        &self,
        group: &str,
        version: &str,
        plural: &str,
    ) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// Lookup by group and plural (the store's key).
    pub(crate) fn by_group_plural(&self, group: &str, plural: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.group == group && r.plural == plural)
    }

    /// Lookup by an object's `apiVersion` and `kind`.
    pub(crate) fn by_type(&self, api_version: &str, kind: &str) -> Option<&ResourceInfo> {
        self.resources
            .iter()
            .find(|r| r.api_version() == api_version && r.kind == kind)
    }

    /// Lookup by `plural` or `plural.group` (kubectl style). A bare plural prefers the core
    /// group, so `events` is core events and `events.events.k8s.io` the newer API.
    pub(crate) fn by_name(&self, name: &str) -> Option<&ResourceInfo> {
        if let Some(core) = self
            .resources
            .iter()
            .find(|r| r.group.is_empty() && r.plural == name)
        {
            return Some(core);
        }
        if let Some(r) = self
            .resources
            .iter()
            .find(|r| !r.group.is_empty() && format!("{}.{}", r.plural, r.group) == name)
        {
            return Some(r);
        }
        let mut matching = self.resources.iter().filter(|r| r.plural == name);
        match (matching.next(), matching.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    }

    /// `GET /api`: the core versions.
    pub(crate) fn core_versions(&self) -> Value {
        json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
    }

    /// `GET /apis`: every named group with its (single) served version.
    pub(crate) fn group_list(&self) -> Value {
        let names: std::collections::BTreeSet<&str> = self
            .resources
            .iter()
            .filter(|r| !r.group.is_empty())
            .map(|r| r.group.as_str())
            .collect();
        let groups: Vec<Value> = names.into_iter().filter_map(|g| self.group(g)).collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    /// `GET /apis/{group}`.
    pub(crate) fn group(&self, group: &str) -> Option<Value> {
        let mut versions: Vec<&str> = self
            .resources
            .iter()
            .filter(|r| r.group == group && !group.is_empty())
            .map(|r| r.version.as_str())
            .collect();
        versions.sort_unstable();
        versions.dedup();
        let first = *versions.first()?;
        let entries: Vec<Value> = versions
            .iter()
            .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
            .collect();
        Some(json!({
            "kind": "APIGroup",
            "apiVersion": "v1",
            "name": group,
            "versions": entries,
            "preferredVersion": {"groupVersion": format!("{group}/{first}"), "version": first},
        }))
    }

    /// `GET /api/v1` or `GET /apis/{group}/{version}`; `None` when nothing is served there.
    pub(crate) fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let verbs = json!([
            "create",
            "delete",
            "deletecollection",
            "get",
            "list",
            "patch",
            "update",
            "watch"
        ]);
        let mut resources = Vec::new();
        for r in self
            .resources
            .iter()
            .filter(|r| r.group == group && r.version == version)
        {
            resources.push(json!({
                "name": r.plural,
                "singularName": r.singular(),
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": verbs,
            }));
            if r.has_status {
                resources.push(json!({
                    "name": format!("{}/status", r.plural),
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": ["get", "patch", "update"],
                }));
            }
        }
        if resources.is_empty() {
            return None;
        }
        let group_version = if group.is_empty() {
            version.to_owned()
        } else {
            format!("{group}/{version}")
        };
        Some(json!({
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": resources,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        let mut r = Registry::default();
        for info in ResourceInfo::defaults() {
            r.add(info);
        }
        r
    }

    #[test]
    fn bare_plural_prefers_core_and_dotted_name_selects_group() {
        let r = registry();
        assert_eq!(r.by_name("events").map(|i| i.group.as_str()), Some(""));
        assert_eq!(
            r.by_name("events.events.k8s.io").map(|i| i.group.as_str()),
            Some("events.k8s.io")
        );
        assert_eq!(r.by_name("jobs").map(|i| i.group.as_str()), Some("batch"));
        assert!(r.by_name("workflows").is_none());
    }

    #[test]
    fn group_list_names_each_group_once() {
        let list = registry().group_list();
        let names: Vec<&str> = list["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "batch",
                "coordination.k8s.io",
                "events.k8s.io",
                "riotkit.org"
            ]
        );
    }

    #[test]
    fn resource_list_includes_status_subresource_and_is_absent_for_unknown_groups() {
        let r = registry();
        let list = r.resource_list("riotkit.org", "v1alpha1").expect("served");
        let names: Vec<&str> = list["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["name"].as_str())
            .collect();
        assert!(names.contains(&"scheduledbackups/status"));
        assert!(r.resource_list("argoproj.io", "v1alpha1").is_none());
    }
}
