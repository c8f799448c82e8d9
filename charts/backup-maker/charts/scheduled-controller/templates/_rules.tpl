{{/* What differs for scheduled-controller. The reason for every verb is in this chart's README ("Permissions"). */}}
{{- define "scheduled-controller.component" -}}controller{{- end }}

{{- define "scheduled-controller.clusterRules" -}}
- apiGroups: ["riotkit.org"]
  resources: ["scheduledbackups"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["riotkit.org"]
  resources: ["scheduledbackups/status"]
  verbs: ["patch"]
- apiGroups: ["riotkit.org"]
  resources: ["clusterbackupproceduretemplates"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["secrets", "configmaps"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
