{{/*
A long-running Deployment. Call with
(dict "root" $ "component" "api" "values" .Values.api "port" 8080 "command" (list ...) "secretEnv" "...yaml...")
*/}}
{{- define "agent-portal.deployment" -}}
{{- $root := .root }}
{{- $v := .values }}
{{- include "agent-portal.checkGrace" . }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "agent-portal.fullname" $root }}-{{ .component }}
  labels:
    {{- include "agent-portal.labels" . | nindent 4 }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "agent-portal.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        {{- include "agent-portal.labels" . | nindent 8 }}
      annotations:
        {{- include "agent-portal.checksums" $root | nindent 8 }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "agent-portal.fullname" $root }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with include "agent-portal.topologySpread" . | trim }}
      {{- . | nindent 6 }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "agent-portal.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command:
            {{- toYaml .command | nindent 12 }}
          ports:
            - name: http
              containerPort: {{ .port }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "agent-portal.fullname" $root }}-config
          env:
            {{- include "agent-portal.commonEnv" $root | nindent 12 }}
            - name: PORTAL__HTTP__PORT
              value: {{ .port | quote }}
            {{- .secretEnv | nindent 12 }}
            {{- with include "agent-portal.jwtSecretEnv" $root | trim }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with include "agent-portal.genesysSecretEnv" $root | trim }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- with $v.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          {{- include "agent-portal.probes" . | nindent 10 }}
          {{- if gt (int $v.preStopSleepSeconds) 0 }}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ $v.preStopSleepSeconds }}
          {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 16Mi
{{- end }}
