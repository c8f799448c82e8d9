{{/* What differs for gpg-keygen. The reason for every verb is in this chart's README ("Permissions"). */}}
{{- define "gpg-keygen.component" -}}controller{{- end }}

{{- define "gpg-keygen.clusterRules" -}}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create"]
- apiGroups: ["riotkit.org"]
  resources: ["scheduledbackups"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["riotkit.org"]
  resources: ["scheduledbackups/status"]
  verbs: ["patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
