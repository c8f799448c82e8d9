{{/* What differs for metrics-exporter: read-only, no events, no leader election. See this chart's README ("Permissions"). */}}
{{- define "metrics-exporter.component" -}}exporter{{- end }}

{{- define "metrics-exporter.clusterRules" -}}
- apiGroups: ["riotkit.org"]
  resources: ["scheduledbackups", "requestedbackupactions"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["batch"]
  resources: ["cronjobs", "jobs"]
  verbs: ["get", "list", "watch"]
{{- end }}
