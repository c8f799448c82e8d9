{{/*
What differs for action-controller: the reason for every verb is in this chart's README ("Permissions").
namespacedRules: granted cluster-wide, or only in watchNamespace (through a RoleBinding) when that is set.
clusterScopedRules: cluster-scoped kinds, always granted through a ClusterRoleBinding.
*/}}
{{- define "action-controller.component" -}}controller{{- end }}

{{- define "action-controller.namespacedRules" -}}
- apiGroups: ["riotkit.org"]
  resources: ["requestedbackupactions"]
  verbs: ["get", "list", "watch", "delete"]
- apiGroups: ["riotkit.org"]
  resources: ["requestedbackupactions/status"]
  verbs: ["patch"]
- apiGroups: ["riotkit.org"]
  resources: ["requestedbackupactions/finalizers"]
  verbs: ["update"]
- apiGroups: ["riotkit.org"]
  resources: ["scheduledbackups"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["podtemplates"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
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

{{- define "action-controller.clusterScopedRules" -}}
{{- end }}
