{{/* Names ------------------------------------------------------------------------------- */}}

{{- define "kubelambda.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubelambda.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kubelambda.operatorName" -}}
{{- printf "%s-operator" (include "kubelambda.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubelambda.gatewayName" -}}
{{- printf "%s-gateway" (include "kubelambda.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubelambda.natsName" -}}
{{- printf "%s-nats" (include "kubelambda.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels ------------------------------------------------------------------------------ */}}

{{- define "kubelambda.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "kubelambda.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: kubelambda
{{- end -}}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "gateway") */}}
{{- define "kubelambda.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubelambda.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Images ------------------------------------------------------------------------------ */}}

{{/* The kubelambda image: repository:tag, or repository@digest when a digest is given. */}}
{{- define "kubelambda.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "kubelambda.natsImage" -}}
{{- $img := .Values.queue.nats.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository $img.tag -}}
{{- end -}}
{{- end -}}

{{/* Settings derived from several values ---------------------------------------------- */}}

{{- define "kubelambda.defaultNamespace" -}}
{{- if .Values.gateway.defaultNamespace -}}
{{- .Values.gateway.defaultNamespace -}}
{{- else if .Values.functionNamespaces -}}
{{- first .Values.functionNamespaces -}}
{{- else -}}
default
{{- end -}}
{{- end -}}

{{/* Namespaces that get a function-pod NetworkPolicy, as a YAML list. */}}
{{- define "kubelambda.policyNamespaces" -}}
{{- if .Values.functionNamespaces -}}
{{- toYaml .Values.functionNamespaces -}}
{{- else if .Values.networkPolicy.functionNamespaces -}}
{{- toYaml .Values.networkPolicy.functionNamespaces -}}
{{- else -}}
{{- /* All namespaces and none named: at least the namespace unqualified names go to. */ -}}
{{- toYaml (list (include "kubelambda.defaultNamespace" .)) -}}
{{- end -}}
{{- end -}}

{{- /* The chart's own NATS runs when the backend is nats, install is on and no url names an
existing server (a url wins: install defaults to true so that two gateways work out of the box). */ -}}
{{- define "kubelambda.natsInstalled" -}}
{{- and (eq .Values.queue.backend "nats") .Values.queue.nats.install (not .Values.queue.nats.url) -}}
{{- end -}}

{{- define "kubelambda.natsUrl" -}}
{{- if .Values.queue.nats.url -}}
{{- .Values.queue.nats.url -}}
{{- else -}}
{{- printf "nats://%s.%s.svc:4222" (include "kubelambda.natsName" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "kubelambda.queueUrl" -}}
{{- if eq .Values.queue.backend "nats" -}}
{{- include "kubelambda.natsUrl" . -}}
{{- else -}}
sqlite:///var/lib/kubelambda/queue.db
{{- end -}}
{{- end -}}

{{/* Pod Security "restricted" ------------------------------------------------------------- */}}

{{- define "kubelambda.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "kubelambda.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Cross-field checks that JSON Schema (draft-07) cannot express; they fail with a message
     naming the values to change. Included once, from the gateway Deployment. */}}
{{- define "kubelambda.validate" -}}
{{- if gt (int .Values.concurrency.unreservedFloor) (int .Values.concurrency.total) -}}
{{- fail (printf "concurrency.unreservedFloor (%d) must not exceed concurrency.total (%d)" (int .Values.concurrency.unreservedFloor) (int .Values.concurrency.total)) -}}
{{- end -}}
{{- if and (eq .Values.queue.backend "sqlite") (gt (int .Values.gateway.replicas) 1) -}}
{{- fail (printf "gateway.replicas is %d but queue.backend=sqlite keeps the async queue in one file of one pod; use queue.backend=nats for more than one gateway replica" (int .Values.gateway.replicas)) -}}
{{- end -}}
{{- if and (eq .Values.queue.backend "nats") (not .Values.queue.nats.install) (not .Values.queue.nats.url) -}}
{{- fail "queue.backend=nats needs queue.nats.install=true or queue.nats.url=nats://HOST:4222" -}}
{{- end -}}
{{- if has .Release.Namespace .Values.functionNamespaces -}}
{{- fail (printf "functionNamespaces includes the release namespace %s: it never serves functions (a Function's role could name the operator's ServiceAccount)" .Release.Namespace) -}}
{{- end -}}
{{- if and .Values.gateway.httpRoute.enabled (not .Values.gateway.httpRoute.parentRefs) -}}
{{- fail "gateway.httpRoute.enabled=true needs gateway.httpRoute.parentRefs (the Gateway to attach to)" -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the agents' key. */}}
{{- define "kubelambda.agentKeySecret" -}}
{{- .Values.agentKey.existingSecret | default (printf "%s-agent-key" (include "kubelambda.fullname" .)) -}}
{{- end -}}

{{- define "kubelambda.pollerName" -}}
{{- printf "%s-poller" (include "kubelambda.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubelambda.pollerRules" -}}
- apiGroups: ["kubelambda.dev"]
  resources: ["eventsourcemappings"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["kubelambda.dev"]
  resources: ["eventsourcemappings/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end -}}

{{/* The function URL flags, identical for the gateway (routing) and the operator (status.url). */}}
{{- define "kubelambda.urlArgs" -}}
- --url-domain={{ .Values.functionUrls.domain }}
- --url-scheme={{ .Values.functionUrls.scheme }}
{{- if .Values.functionUrls.port }}
- --url-port={{ .Values.functionUrls.port }}
{{- end }}
{{- end }}

{{/* Whether an auth mode is on: include "kubelambda.authHas" (list . "sigv4") is "true" or "". */}}
{{- define "kubelambda.authHas" -}}
{{- $ctx := index . 0 -}}
{{- if has (index . 1) (splitList "," $ctx.Values.gateway.auth.mode) }}true{{ end -}}
{{- end }}

{{/* The Secret holding the SigV4 keys: the one named, else the one the chart generates. */}}
{{- define "kubelambda.sigv4Secret" -}}
{{- .Values.gateway.auth.sigv4Secret | default (printf "%s-sigv4" (include "kubelambda.fullname" .) | trunc 63 | trimSuffix "-") -}}
{{- end }}
