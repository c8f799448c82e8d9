{{/* The PodDisruptionBudget, when replicas > 1. */}}
{{- define "bmc.podDisruptionBudget" -}}
{{- /* A PDB on a single replica would block node drains forever, so it exists only with replicas > 1. */ -}}
{{- if gt (int .Values.replicas) 1 }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "bmc.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "bmc.labels" . | nindent 4 }}
spec:
  maxUnavailable: {{ .Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "bmc.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}
