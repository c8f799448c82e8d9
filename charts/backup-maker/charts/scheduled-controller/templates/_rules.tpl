{{/*
What differs for scheduled-controller: the reason for every verb is in this chart's README ("Permissions").
namespacedRules: granted cluster-wide, or only in watchNamespace (through a RoleBinding) when that is set.
clusterScopedRules: cluster-scoped kinds, always granted through a ClusterRoleBinding.
*/}}
{{- define "scheduled-controller.component" -}}controller{{- end }}

{{- define "scheduled-controller.namespacedRules" -}}
- apiGroups: ["riotkit.org"]
  resources: ["scheduledbackups"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["riotkit.org"]
  resources: ["scheduledbackups/status"]
  verbs: ["patch"]
- apiGroups: ["riotkit.org"]
  resources: ["scheduledbackups/finalizers"]
  verbs: ["update"]
- apiGroups: ["riotkit.org"]
  resources: ["requestedbackupactions"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["secrets", "configmaps", "podtemplates"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{- define "scheduled-controller.clusterScopedRules" -}}
- apiGroups: ["riotkit.org"]
  resources: ["clusterbackupproceduretemplates"]
  verbs: ["get", "list", "watch"]
{{- end }}
