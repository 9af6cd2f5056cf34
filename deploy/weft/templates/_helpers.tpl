{{/* Names and labels shared by the chart's templates. */}}

{{/* Suffix for revision-scoped names: "" for the default revision, "-<rev>" otherwise. */}}
{{- define "weft.revSuffix" -}}
{{- if eq .Values.revision "default" }}{{ else }}-{{ .Values.revision }}{{ end -}}
{{- end -}}

{{/* The control plane's name: Deployment, Service, ServiceAccount (weft-control-plane[-rev]). */}}
{{- define "weft.name" -}}
weft-control-plane{{ include "weft.revSuffix" . }}
{{- end -}}

{{- define "weft.webhookName" -}}
weft-sidecar-injector{{ include "weft.revSuffix" . }}
{{- end -}}

{{- define "weft.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- define "weft.labels" -}}
app.kubernetes.io/name: weft
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
weft.dev/rev: {{ .Values.revision | quote }}
{{- end -}}

{{- define "weft.selectorLabels" -}}
app: weft-control-plane
weft.dev/rev: {{ .Values.revision | quote }}
{{- end -}}

{{/* Container hardening shared by the control plane and the node proxy. */}}
{{- define "weft.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 1337
runAsGroup: 1337
capabilities:
  drop: [ALL]
{{- end -}}
