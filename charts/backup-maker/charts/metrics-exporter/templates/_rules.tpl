{{/*
What differs for metrics-exporter: read-only, no events, no leader election; the reason for every verb is in this chart's README ("Permissions").
namespacedRules: granted cluster-wide, or only in watchNamespace (through a RoleBinding) when that is set.
clusterScopedRules: cluster-scoped kinds, always granted through a ClusterRoleBinding.
*/}}
{{- define "metrics-exporter.component" -}}exporter{{- end }}

{{- define "metrics-exporter.namespacedRules" -}}
- apiGroups: ["riotkit.org"]
  resources: ["scheduledbackups", "requestedbackupactions"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["batch"]
  resources: ["cronjobs", "jobs"]
  verbs: ["get", "list", "watch"]
{{- end }}

{{- define "metrics-exporter.clusterScopedRules" -}}
{{- end }}
