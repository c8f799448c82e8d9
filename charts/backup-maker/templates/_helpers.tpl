{{/* Umbrella-level helpers. Subchart helpers are the `bmc.*` ones in each subchart. */}}

{{- define "backup-maker.fullname" -}}
{{- if contains "backup-maker" .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-backup-maker" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "backup-maker.labels" -}}
app.kubernetes.io/name: backup-maker
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: backup-maker
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}
