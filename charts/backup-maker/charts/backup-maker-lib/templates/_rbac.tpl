{{/* The ClusterRole(s) and bindings for the rules in <chart>.namespacedRules / <chart>.clusterScopedRules, and the leader-election Role. */}}
{{- define "bmc.rbac" -}}
{{- /*
The rules themselves are per controller, in this chart's _rules.tpl. Without watchNamespace, one
ClusterRole holds all of them and a ClusterRoleBinding grants it. With watchNamespace, the ClusterRole
holds only the namespaced rules and a RoleBinding grants it in that one namespace; cluster-scoped kinds
(ClusterBackupProcedureTemplates) get their own ClusterRole and ClusterRoleBinding.
*/ -}}
{{- $fullname := include "bmc.fullname" . }}
{{- $watch := include "bmc.watchNamespace" . }}
{{- $namespaced := include (printf "%s.namespacedRules" .Chart.Name) . | trim }}
{{- $clusterScoped := include (printf "%s.clusterScopedRules" .Chart.Name) . | trim }}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $fullname }}
  labels:
    {{- include "bmc.labels" . | nindent 4 }}
rules:
  {{- $namespaced | nindent 2 }}
  {{- if and $clusterScoped (not $watch) }}
  {{- $clusterScoped | nindent 2 }}
  {{- end }}
---
apiVersion: rbac.authorization.k8s.io/v1
{{- if $watch }}
kind: RoleBinding
metadata:
  name: {{ $fullname }}
  namespace: {{ $watch }}
{{- else }}
kind: ClusterRoleBinding
metadata:
  name: {{ $fullname }}
{{- end }}
  labels:
    {{- include "bmc.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $fullname }}
subjects:
  - kind: ServiceAccount
    name: {{ include "bmc.serviceAccountName" . }}
    namespace: {{ .Release.Namespace }}
{{- if and $clusterScoped $watch }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $fullname }}-cluster-scoped
  labels:
    {{- include "bmc.labels" . | nindent 4 }}
rules:
  {{- $clusterScoped | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $fullname }}-cluster-scoped
  labels:
    {{- include "bmc.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $fullname }}-cluster-scoped
subjects:
  - kind: ServiceAccount
    name: {{ include "bmc.serviceAccountName" . }}
    namespace: {{ .Release.Namespace }}
{{- end }}
{{- if include "bmc.leaderElectionEnabled" . }}
---
# Leader election: only this controller's own Lease, in the release namespace. `create` cannot be
# limited by resourceNames (the name is not known before the object exists), so it is a separate rule.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ include "bmc.fullname" . }}-leader-election
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "bmc.labels" . | nindent 4 }}
rules:
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["create"]
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    resourceNames: {{ include "bmc.leaseNames" . }}
    verbs: ["get", "list", "watch", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ include "bmc.fullname" . }}-leader-election
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "bmc.labels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ include "bmc.fullname" . }}-leader-election
subjects:
  - kind: ServiceAccount
    name: {{ include "bmc.serviceAccountName" . }}
    namespace: {{ .Release.Namespace }}
{{- end }}
{{- end }}
