{{/*
Helpers of the backup-maker controller subcharts, and of the library's object templates.

Every name starts with "bmc." (backup-maker controller). Each template is called with the including
subchart's context, so .Chart and .Values are that subchart's. Anything that differs per controller
lives in the subchart's own templates/_rules.tpl under a name prefixed with the chart name
(<chart>.component, <chart>.namespacedRules, <chart>.clusterScopedRules).
*/}}

{{/* Chart name, overridable. */}}
{{- define "bmc.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object name: <release>-<chart>, or the release name alone when it already contains the chart name. */}}
{{- define "bmc.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels for selectors: stable across upgrades, so never include versions here. */}}
{{- define "bmc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "bmc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "bmc.labels" -}}
{{ include "bmc.selectorLabels" . }}
app.kubernetes.io/component: {{ include (printf "%s.component" .Chart.Name) . }}
app.kubernetes.io/part-of: backup-maker
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The ServiceAccount the controller runs as. */}}
{{- define "bmc.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "bmc.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required (printf "%s.serviceAccount.name is required when %s.serviceAccount.create is false: name an existing ServiceAccount" .Chart.Name .Chart.Name) .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Global values, present only when installed through the umbrella chart. */}}
{{- define "bmc.global" -}}
{{- toYaml (.Values.global | default dict) }}
{{- end }}

{{/*
Image reference: <repository>[:<tag>][@<digest>]. The repository defaults to
<global.image.registry>/<chart name>, the tag to global.image.tag, then to the chart's appVersion.
*/}}
{{- define "bmc.image" -}}
{{- $g := include "bmc.global" . | fromYaml }}
{{- $gi := $g.image | default dict }}
{{- $registry := $gi.registry | default "ghcr.io/riotkit-org" }}
{{- $repository := .Values.image.repository | default (printf "%s/%s" $registry .Chart.Name) }}
{{- $tag := .Values.image.tag | default $gi.tag | default .Chart.AppVersion }}
{{- $ref := printf "%s:%s" $repository (toString $tag) }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{- define "bmc.imagePullPolicy" -}}
{{- $g := include "bmc.global" . | fromYaml }}
{{- $gi := $g.image | default dict }}
{{- .Values.image.pullPolicy | default $gi.pullPolicy | default "IfNotPresent" }}
{{- end }}

{{- define "bmc.logLevel" -}}
{{- $g := include "bmc.global" . | fromYaml }}
{{- .Values.logLevel | default $g.logLevel | default "info" }}
{{- end }}

{{- define "bmc.logFormat" -}}
{{- $g := include "bmc.global" . | fromYaml }}
{{- .Values.logFormat | default $g.logFormat | default "json" }}
{{- end }}

{{- define "bmc.watchNamespace" -}}
{{- $g := include "bmc.global" . | fromYaml }}
{{- .Values.watchNamespace | default $g.watchNamespace | default "" }}
{{- end }}

{{/* Whether this chart's binary takes part in leader election at all (the read-only exporter does not). */}}
{{- define "bmc.hasLeaderElection" -}}
{{- if hasKey .Values "leaderElection" }}true{{ end }}
{{- end }}

{{/* Whether the Lease RBAC and the --leader-election=true flag are rendered. */}}
{{- define "bmc.leaderElectionEnabled" -}}
{{- if and (include "bmc.hasLeaderElection" .) .Values.leaderElection.enabled }}true{{ end }}
{{- end }}

{{/* The Lease the binary takes: <binary>-leader in the release namespace. */}}
{{- define "bmc.leaseName" -}}
{{- printf "%s-leader" .Chart.Name }}
{{- end }}

{{/*
The shards of this controller, as a JSON list: its own `sharding.shards`, else `global.sharding.shards`.
Only controllers with leader election are sharded (the read-only exporter watches everything).
*/}}
{{- define "bmc.shards" -}}
{{- $g := include "bmc.global" . | fromYaml }}
{{- $gs := $g.sharding | default dict }}
{{- $own := (.Values.sharding | default dict).shards }}
{{- if include "bmc.hasLeaderElection" . }}
{{- toJson ($own | default $gs.shards | default list | uniq) }}
{{- else }}
{{- toJson list }}
{{- end }}
{{- end }}

{{/* Every Lease this chart's Deployments take: the main one, and <binary>-leader-<shard> per shard. */}}
{{- define "bmc.leaseNames" -}}
{{- $names := list (include "bmc.leaseName" .) }}
{{- range (include "bmc.shards" . | fromJsonArray) }}
{{- $names = append $names (printf "%s-%s" (include "bmc.leaseName" $) .) }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/* Fails the render on combinations that would deploy something broken. */}}
{{- define "bmc.validate" -}}
{{- range (include "bmc.shards" . | fromJsonArray) }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" (toString .)) }}
{{- fail (printf "shard name %q is not a DNS label (lower-case letters, digits and '-'): it names a Deployment, a Lease and the riotkit.org/shard label value" (toString .)) }}
{{- end }}
{{- end }}
{{- if and (gt (int .Values.replicas) 1) (include "bmc.hasLeaderElection" .) (not .Values.leaderElection.enabled) }}
{{- fail (printf "%s.replicas is %d but %s.leaderElection.enabled is false: every replica would reconcile the same objects. Set %s.leaderElection.enabled=true or %s.replicas=1" .Chart.Name (int .Values.replicas) .Chart.Name .Chart.Name .Chart.Name) }}
{{- end }}
{{- end }}
