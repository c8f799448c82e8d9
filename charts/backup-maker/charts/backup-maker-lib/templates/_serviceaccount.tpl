{{/* The ServiceAccount, when serviceAccount.create. */}}
{{- define "bmc.serviceAccount" -}}
{{- if .Values.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "bmc.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "bmc.labels" . | nindent 4 }}
  {{- with .Values.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}
{{- end }}
