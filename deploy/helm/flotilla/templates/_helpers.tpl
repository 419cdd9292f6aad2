{{/* Name prefix of every object: the release name, or release-chart. Cut
to 40 characters so the longest suffix (-demo-headless-primary) still fits
in 63. */}}
{{- define "flotilla.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "flotilla.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flotilla
{{- end -}}

{{/* Selector labels: dict "root" $ "component" name ["track" t]. */}}
{{- define "flotilla.selector" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .track }}
track: {{ . }}
{{- end }}
{{- end -}}

{{/* The demo's tracks as YAML: one unnamed track for rolling and recreate,
two named ones for the other strategies. */}}
{{- define "flotilla.demoTracks" -}}
{{- $s := .Values.strategy -}}
{{- $tracks := list -}}
{{- if or (eq $s.type "rolling") (eq $s.type "recreate") -}}
{{- $tracks = list (dict "track" "" "version" (.Values.demo.version | default .Values.image.tag) "replicas" .Values.demo.replicas) -}}
{{- else if eq $s.type "blue-green" -}}
{{- $tracks = list (merge (dict "track" "blue") $s.blueGreen.blue) (merge (dict "track" "green") $s.blueGreen.green) -}}
{{- else if eq $s.type "canary" -}}
{{- $tracks = list (merge (dict "track" "stable") $s.canary.stable) (merge (dict "track" "canary") $s.canary.canary) -}}
{{- else if eq $s.type "ab-testing" -}}
{{- $tracks = list (merge (dict "track" "a") $s.abTesting.a) (merge (dict "track" "b") $s.abTesting.b) -}}
{{- else if eq $s.type "shadow" -}}
{{- $tracks = list (merge (dict "track" "primary") $s.shadow.primary) (merge (dict "track" "shadow") $s.shadow.shadow) -}}
{{- else -}}
{{- fail (printf "strategy.type: unknown strategy %q" $s.type) -}}
{{- end -}}
{{- toYaml $tracks -}}
{{- end -}}

{{/* The track the plain demo Service selects ("" for every pod). */}}
{{- define "flotilla.demoServiceTrack" -}}
{{- $s := .Values.strategy -}}
{{- if eq $s.type "blue-green" -}}{{ $s.blueGreen.active }}
{{- else if eq $s.type "ab-testing" -}}a
{{- else if eq $s.type "shadow" -}}primary
{{- end -}}
{{- end -}}

{{/* Name of a demo track's objects. */}}
{{- define "flotilla.demoName" -}}
{{- $base := printf "%s-demo" (include "flotilla.fullname" .root) -}}
{{- if .track }}{{ printf "%s-%s" $base .track }}{{ else }}{{ $base }}{{ end -}}
{{- end -}}

{{/* A Service: dict "root" $ "name" n "component" c "track" t "type" type
"port" p "nodePort" np "targetPort" tp "headless" bool "labels" map
"httpsPort" p "httpsNodePort" np (a second port, https → container port
https). */}}
{{- define "flotilla.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}
  labels:
    {{- include "flotilla.labels" .root | nindent 4 }}
    {{- include "flotilla.selector" . | nindent 4 }}
    {{- with .labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- if .headless }}
  clusterIP: None
  {{- else }}
  type: {{ .type | default "ClusterIP" }}
  {{- end }}
  selector:
    {{- include "flotilla.selector" . | nindent 4 }}
  ports:
    - name: {{ .portName | default "http" }}
      port: {{ .port }}
      targetPort: {{ .targetPort | default "http" }}
      {{- if and .nodePort (eq (.type | default "ClusterIP") "NodePort") (not .headless) }}
      nodePort: {{ .nodePort }}
      {{- end }}
    {{- if .httpsPort }}
    - name: https
      port: {{ .httpsPort }}
      targetPort: https
      {{- if and .httpsNodePort (eq (.type | default "ClusterIP") "NodePort") }}
      nodePort: {{ .httpsNodePort }}
      {{- end }}
    {{- end }}
{{- end -}}

{{/* A PodDisruptionBudget for a workload's pods. */}}
{{- define "flotilla.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  labels:
    {{- include "flotilla.labels" .root | nindent 4 }}
    {{- include "flotilla.selector" . | nindent 4 }}
spec:
  maxUnavailable: {{ .root.Values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "flotilla.selector" . | nindent 6 }}
{{- end -}}

{{/* "FLOTILLA_X: v" maps as env entries, sorted by name. */}}
{{- define "flotilla.env" -}}
{{- range $k, $v := . }}
- name: {{ $k }}
  value: {{ $v | toString | quote }}
{{- end }}
{{- end -}}

{{/* A flotilla Deployment: dict "root" $ "name" n "component" c "track" t
"version" tag "replicas" n "args" list "env" list-of-env-yaml "resources" r
"recreate" bool "drainDelay" d "admin" bool "configMap" name "podIP" bool
"serviceAccount" name (mounts its token; POD_NAMESPACE set)
"backend" bool (the gateway routes to it) "secret" / "secrets" (one
dict, a list of them: "volume" name, Secret "name", "key" projected as a
file of the same name, read-only "mountPath") "tlsSecret" name (HTTPS on
container port 8443 "https", the kubernetes.io/tls Secret mounted
read-only at /etc/flotilla/tls) "memoryDirs" (a list of dict "volume"
name, "mountPath", "sizeLimit": a memory-backed emptyDir, writable, for
files that must never reach the disk). */}}
{{- define "flotilla.deployment" -}}
{{- $v := .root.Values -}}
{{- $secrets := list -}}
{{- with .secret }}{{ $secrets = append $secrets . }}{{ end -}}
{{- range .secrets }}{{ $secrets = append $secrets . }}{{ end -}}
{{- $drain := .drainDelay | default $v.termination.drainDelay -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  labels:
    {{- include "flotilla.labels" .root | nindent 4 }}
    {{- include "flotilla.selector" . | nindent 4 }}
spec:
  replicas: {{ .replicas }}
  revisionHistoryLimit: 5
  {{- if and .backend $v.rollout.minReadySeconds }}
  # values: rollout.minReadySeconds (the gateway watches EndpointSlices and
  # needs none).
  minReadySeconds: {{ $v.rollout.minReadySeconds }}
  {{- end }}
  strategy:
    {{- if .recreate }}
    type: Recreate
    {{- else }}
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
    {{- end }}
  selector:
    matchLabels:
      {{- include "flotilla.selector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "flotilla.labels" .root | nindent 8 }}
        {{- include "flotilla.selector" . | nindent 8 }}
    spec:
      {{- if .serviceAccount }}
      # Reads EndpointSlices (Kubernetes discovery), nothing else: the only
      # pod that mounts a token.
      serviceAccountName: {{ .serviceAccount }}
      automountServiceAccountToken: true
      {{- else }}
      automountServiceAccountToken: false
      {{- end }}
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ add (include "flotilla.seconds" $drain) (include "flotilla.seconds" $v.termination.shutdownTimeout) 10 }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "flotilla.selector" . | nindent 14 }}
      containers:
        - name: {{ .component }}
          image: "{{ $v.image.repository }}:{{ .version }}"
          imagePullPolicy: {{ $v.image.pullPolicy }}
          args: {{ toJson .args }}
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef: {fieldPath: metadata.name}
            {{- if .serviceAccount }}
            - name: POD_NAMESPACE
              valueFrom:
                fieldRef: {fieldPath: metadata.namespace}
            {{- end }}
            {{- if .podIP }}
            - name: POD_IP
              valueFrom:
                fieldRef: {fieldPath: status.podIP}
            {{- end }}
            - name: FLOTILLA_DRAIN_DELAY
              value: {{ $drain | quote }}
            - name: FLOTILLA_SHUTDOWN_TIMEOUT
              value: {{ $v.termination.shutdownTimeout | quote }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
          ports:
            - name: http
              containerPort: 8080
            {{- if .tlsSecret }}
            - name: https
              containerPort: 8443
            {{- end }}
            {{- if .admin }}
            - name: admin
              containerPort: 9901
            {{- end }}
          readinessProbe:
            httpGet: {path: /readyz, port: {{ if .admin }}admin{{ else }}http{{ end }}}
            {{- toYaml $v.probes.readiness | nindent 12 }}
          livenessProbe:
            httpGet: {path: /healthz, port: {{ if .admin }}admin{{ else }}http{{ end }}}
            {{- toYaml $v.probes.liveness | nindent 12 }}
          resources:
            {{- toYaml .resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.containerSecurityContext | nindent 12 }}
          {{- if or .configMap $secrets .tlsSecret }}
          volumeMounts:
            {{- if .configMap }}
            # A directory, never a subPath: subPath mounts are not updated.
            - name: config
              mountPath: /etc/flotilla/gateway
              readOnly: true
            {{- end }}
            {{- range $secrets }}
            - name: {{ .volume }}
              mountPath: {{ .mountPath }}
              readOnly: true
            {{- end }}
            {{- if .tlsSecret }}
            # A directory, never a subPath: a renewed certificate must
            # reach the gateway, which reloads it.
            - name: tls
              mountPath: /etc/flotilla/tls
              readOnly: true
            {{- end }}
            {{- range .memoryDirs }}
            - name: {{ .volume }}
              mountPath: {{ .mountPath }}
            {{- end }}
          {{- end }}
      {{- if or .configMap $secrets .tlsSecret }}
      volumes:
        {{- with .configMap }}
        - name: config
          configMap:
            name: {{ . }}
        {{- end }}
        {{- range $secrets }}
        - name: {{ .volume }}
          secret:
            secretName: {{ .name }}
            items:
              - {key: {{ .key }}, path: {{ .key }}}
        {{- end }}
        {{- with .tlsSecret }}
        - name: tls
          secret:
            secretName: {{ . }}
            items:
              - {key: tls.crt, path: tls.crt}
              - {key: tls.key, path: tls.key}
        {{- end }}
        {{- range .memoryDirs }}
        - name: {{ .volume }}
          emptyDir: {medium: Memory, sizeLimit: {{ .sizeLimit }}}
        {{- end }}
      {{- end }}
{{- end -}}

{{/* Whole seconds of a duration like 10s, 1m or 1m30s (schema-checked). */}}
{{- define "flotilla.seconds" -}}
{{- $total := 0 -}}
{{- range regexFindAll "[0-9]+(ms|h|m|s)" (toString .) -1 -}}
{{- $n := regexFind "^[0-9]+" . | atoi -}}
{{- if hasSuffix "ms" . }}{{ $total = add $total (div $n 1000) }}
{{- else if hasSuffix "h" . }}{{ $total = add $total (mul $n 3600) }}
{{- else if hasSuffix "m" . }}{{ $total = add $total (mul $n 60) }}
{{- else }}{{ $total = add $total $n }}{{ end -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/* The Secret holding Redis's password: keys "password" (for the
counter) and "redis-auth.conf" ("requirepass <password>", for
redis-server --include). */}}
{{- define "flotilla.redisSecret" -}}
{{- .Values.redis.auth.existingSecret | default (printf "%s-redis-auth" (include "flotilla.fullname" .)) -}}
{{- end -}}

{{/* The kubernetes.io/tls Secret of the gateway's HTTPS listener. */}}
{{- define "flotilla.tlsSecret" -}}
{{- .Values.gateway.tls.secretName | default (printf "%s-gateway-tls" (include "flotilla.fullname" .)) -}}
{{- end -}}

{{/* The Secret holding the gateway admin API's token (key "token"). */}}
{{- define "flotilla.adminSecret" -}}
{{- .Values.gateway.admin.existingSecret | default (printf "%s-gateway-admin" (include "flotilla.fullname" .)) -}}
{{- end -}}

{{/* A secret value: the one given, else the one already in the cluster's
Secret (so an upgrade keeps it), else 32 random characters. Arguments:
root, given, secret (name), key. */}}
{{- define "flotilla.secretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret -}}
{{- if .given -}}
{{- .given -}}
{{- else if and $existing $existing.data (index $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}

{{/* A NetworkPolicy peer: the release's pods of one app (name, instance). */}}
{{- define "flotilla.peer" -}}
- podSelector:
    matchLabels:
      app.kubernetes.io/name: {{ .name }}
      app.kubernetes.io/instance: {{ .instance }}
{{- end -}}
