{{/*
The controller's Deployment (fails the render on unsafe value combinations first), and with shards
(bmc.shards) one more Deployment per shard: `--shard-selector=riotkit.org/shard=<name>` and its own Lease
`<chart>-leader-<name>`, while the main one takes the default shard (`!riotkit.org/shard`).
*/}}
{{- define "bmc.deployment" -}}
{{- include "bmc.validate" . }}
{{- $shards := include "bmc.shards" . | fromJsonArray }}
{{- $sharded := gt (len $shards) 0 }}
{{- /* "" is the main Deployment: unsharded, or the default shard once there are shards. */ -}}
{{- range $i, $shard := prepend $shards "" }}
{{- with $ }}
{{- if $i }}
---
{{- end }}
{{- $name := include "bmc.fullname" . }}
{{- if $shard }}
{{- $name = printf "%s-shard-%s" $name $shard }}
{{- if gt (len $name) 63 }}
{{- fail (printf "the Deployment of shard %q would be named %s, longer than 63 characters: use a shorter shard name (or nameOverride)" $shard $name) }}
{{- end }}
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "bmc.labels" . | nindent 4 }}
    {{- with $shard }}
    riotkit.org/shard: {{ . }}
    {{- end }}
spec:
  replicas: {{ .Values.replicas }}
  revisionHistoryLimit: 3
  selector:
    matchLabels:
      {{- include "bmc.selectorLabels" . | nindent 6 }}
      {{- with $shard }}
      riotkit.org/shard: {{ . }}
      {{- end }}
  template:
    metadata:
      labels:
        {{- include "bmc.selectorLabels" . | nindent 8 }}
        {{- with $shard }}
        riotkit.org/shard: {{ . }}
        {{- end }}
        app.kubernetes.io/component: {{ include (printf "%s.component" .Chart.Name) . }}
        app.kubernetes.io/part-of: backup-maker
        {{- with .Values.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        kubectl.kubernetes.io/default-container: {{ .Chart.Name }}
        {{- with .Values.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "bmc.serviceAccountName" . }}
      automountServiceAccountToken: true
      enableServiceLinks: false
      {{- with .Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- $g := include "bmc.global" . | fromYaml }}
      {{- with (concat (.Values.imagePullSecrets | default list) ($g.imagePullSecrets | default list)) }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      # Pod Security Standard "restricted": fixed here rather than in values so it cannot be weakened by accident.
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {{ .Chart.Name }}
          image: {{ include "bmc.image" . | quote }}
          imagePullPolicy: {{ include "bmc.imagePullPolicy" . }}
          args:
            - run
            - --metrics-addr=0.0.0.0:{{ .Values.metrics.port }}
            {{- if include "bmc.hasLeaderElection" . }}
            - --leader-election={{ ternary "true" "false" (not (not .Values.leaderElection.enabled)) }}
            {{- end }}
            - --log-format={{ include "bmc.logFormat" . }}
            {{- with include "bmc.watchNamespace" . }}
            - --namespace={{ . }}
            {{- end }}
            {{- if $shard }}
            - --shard-selector=riotkit.org/shard={{ $shard }}
            {{- else if $sharded }}
            - "--shard-selector=!riotkit.org/shard"
            {{- end }}
            {{- if and (hasKey .Values "concurrency") .Values.concurrency }}
            - --concurrency={{ .Values.concurrency }}
            {{- end }}
            {{- with .Values.overdueGrace }}
            - --overdue-grace={{ . }}
            {{- end }}
            {{- with .Values.extraArgs }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          env:
            - name: RUST_LOG
              value: {{ include "bmc.logLevel" . | quote }}
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            {{- with .Values.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: metrics
              containerPort: {{ .Values.metrics.port }}
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /healthz
              port: metrics
            {{- toYaml .Values.livenessProbe | nindent 12 }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: metrics
            {{- toYaml .Values.readinessProbe | nindent 12 }}
          {{- with .Values.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            runAsNonRoot: true
            capabilities:
              drop:
                - ALL
            seccompProfile:
              type: RuntimeDefault
          volumeMounts:
            # The root filesystem is read-only; a small in-memory /tmp for anything that insists on one.
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            medium: Memory
            sizeLimit: 16Mi
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
{{- end }}
{{- end }}
