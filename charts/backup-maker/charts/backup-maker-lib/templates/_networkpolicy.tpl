{{/* The NetworkPolicy, when networkPolicy.enabled. */}}
{{- define "bmc.networkPolicy" -}}
{{- if .Values.networkPolicy.enabled }}
{{- $np := .Values.networkPolicy }}
# Default-deny for this controller's pods, except: scrapes of the metrics port, DNS, and the API server.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "bmc.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "bmc.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "bmc.selectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  ingress:
    - ports:
        - port: metrics
          protocol: TCP
      {{- with $np.metricsFrom }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  egress:
    # DNS.
    - to:
        - namespaceSelector: {}
          podSelector:
            matchLabels:
              {{- toYaml $np.dns.podLabels | nindent 14 }}
      ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    # The Kubernetes API server. Its address is not selectable by labels; restrict it with apiServer.cidrs.
    - ports:
        {{- range $np.apiServer.ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- with $np.apiServer.cidrs }}
      to:
        {{- range . }}
        - ipBlock:
            cidr: {{ . }}
        {{- end }}
      {{- end }}
{{- end }}
{{- end }}
