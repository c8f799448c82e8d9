{{/* The metrics Service. */}}
{{- define "bmc.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "bmc.fullname" . }}-metrics
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "bmc.labels" . | nindent 4 }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: ClusterIP
  selector:
    {{- include "bmc.selectorLabels" . | nindent 4 }}
  ports:
    - name: metrics
      port: {{ .Values.metrics.port }}
      targetPort: metrics
      protocol: TCP
{{- end }}
