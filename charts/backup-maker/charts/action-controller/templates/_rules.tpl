{{/* What differs for action-controller. The reason for every verb is in this chart's README ("Permissions"). */}}
{{- define "action-controller.component" -}}controller{{- end }}

{{- define "action-controller.clusterRules" -}}
- apiGroups: ["riotkit.org"]
  resources: ["requestedbackupactions"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["riotkit.org"]
  resources: ["requestedbackupactions/status"]
  verbs: ["patch"]
- apiGroups: ["riotkit.org"]
  resources: ["scheduledbackups", "clusterbackupproceduretemplates"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create"]
- apiGroups: ["argoproj.io"]
  resources: ["workflows"]
  verbs: ["get", "list", "watch", "create"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
