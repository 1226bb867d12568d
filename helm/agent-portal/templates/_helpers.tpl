{{/* Chart name. */}}
{{- define "agent-portal.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fullname: <release>-<chart>, or <release> when it already contains the chart name. */}}
{{- define "agent-portal.fullname" -}}
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

{{- define "agent-portal.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels; call with (dict "root" $ "component" "api"). */}}
{{- define "agent-portal.labels" -}}
helm.sh/chart: {{ include "agent-portal.chart" .root }}
{{ include "agent-portal.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Values.image.tag | default .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: agent-portal
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{- define "agent-portal.selectorLabels" -}}
app.kubernetes.io/name: {{ include "agent-portal.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end }}

{{- define "agent-portal.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "agent-portal.secretName" -}}
{{- if .Values.secrets.create }}
{{- printf "%s-secrets" (include "agent-portal.fullname" .) }}
{{- else }}
{{- required "secrets.existingSecret is required when secrets.create is false" .Values.secrets.existingSecret }}
{{- end }}
{{- end }}

{{- define "agent-portal.usesJwks" -}}
{{- if .Values.config.PORTAL__AUTH__JWKS_URL }}true{{ end }}
{{- end }}

{{/* The rendered ConfigMap data, shared by the ConfigMap, its checksum and the migrate Job. */}}
{{- define "agent-portal.configData" -}}
{{- range $key, $value := .Values.config }}
{{- if ne (toString $value) "" }}
{{ $key }}: {{ toString $value | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod annotations that roll the pods when the rendered ConfigMap (or the chart's Secret) changes. */}}
{{- define "agent-portal.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- if .Values.secrets.create }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}

{{/* A secretKeyRef env entry: (dict "root" $ "env" NAME "key" KEY "optional" bool). */}}
{{- define "agent-portal.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ include "agent-portal.secretName" .root }}
      key: {{ .key | default .env }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}

{{/* Downward API and tracing env, first in every container. */}}
{{- define "agent-portal.commonEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: OTEL_RESOURCE_ATTRIBUTES
  value: k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)
{{- if .Values.telemetry.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .Values.telemetry.otlpEndpoint | quote }}
{{- end }}
{{- end }}

{{/* HS256 secret, only when no JWKS URL is configured. */}}
{{- define "agent-portal.jwtSecretEnv" -}}
{{- if not (include "agent-portal.usesJwks" .) }}
{{ include "agent-portal.secretEnv" (dict "root" . "env" "PORTAL__AUTH__JWT_SECRET") }}
{{- end }}
{{- end }}

{{/* Genesys's OAuth client secret, only when Genesys is configured (config.PORTAL__GENESYS__API_URL),
and then in every container: only the api calls Genesys, but every binary checks the whole
configuration at start, and genesys.api_url needs the client secret. */}}
{{- define "agent-portal.genesysSecretEnv" -}}
{{- if .Values.config.PORTAL__GENESYS__API_URL }}
{{ include "agent-portal.secretEnv" (dict "root" . "env" "PORTAL__GENESYS__CLIENT_SECRET") }}
{{- end }}
{{- end }}

{{- define "agent-portal.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{/* topologySpreadConstraints for a component. */}}
{{- define "agent-portal.topologySpread" -}}
{{- if .root.Values.topologySpread.enabled }}
topologySpreadConstraints:
  {{- range $key := list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
  - maxSkew: {{ $.root.Values.topologySpread.maxSkew }}
    topologyKey: {{ $key }}
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "agent-portal.selectorLabels" $ | nindent 8 }}
    matchLabelKeys:
      - pod-template-hash
  {{- end }}
{{- end }}
{{- end }}

{{/* Probes on the service's own endpoints. */}}
{{- define "agent-portal.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 2
  timeoutSeconds: 2
  failureThreshold: 30
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
  successThreshold: 1
{{- end }}

{{/* Fail the render when the grace period cannot hold preStop + drain. */}}
{{- define "agent-portal.checkGrace" -}}
{{- $grace := int (.root.Values.config.PORTAL__HTTP__SHUTDOWN_GRACE_SECS | default 20) }}
{{- $need := add (int .values.preStopSleepSeconds) $grace (int .values.drainTailSeconds) 5 }}
{{- if lt (int .values.terminationGracePeriodSeconds) (int $need) }}
{{- fail (printf "%s.terminationGracePeriodSeconds (%d) must be >= preStopSleepSeconds + PORTAL__HTTP__SHUTDOWN_GRACE_SECS + drainTailSeconds + 5 = %d" .component (int .values.terminationGracePeriodSeconds) (int $need)) }}
{{- end }}
{{- end }}

{{/* NetworkPolicy egress rules. */}}
{{- define "agent-portal.egressRule" -}}
- to:
    {{- toYaml .to | nindent 4 }}
  ports:
    {{- range .ports }}
    - protocol: TCP
      port: {{ . }}
    {{- end }}
{{- end }}
{{- define "agent-portal.dnsRule" -}}
- to:
    {{- toYaml . | nindent 4 }}
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end }}
