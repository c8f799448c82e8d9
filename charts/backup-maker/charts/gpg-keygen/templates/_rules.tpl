{{/*
What differs for gpg-keygen: the reason for every verb is in this chart's README ("Permissions").
namespacedRules: granted cluster-wide, or only in watchNamespace (through a RoleBinding) when that is set.
clusterScopedRules: cluster-scoped kinds, always granted through a ClusterRoleBinding.
*/}}
{{- define "gpg-keygen.component" -}}controller{{- end }}

{{- define "gpg-keygen.namespacedRules" -}}
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

{{- define "gpg-keygen.clusterScopedRules" -}}
{{- end }}
