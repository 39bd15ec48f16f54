{{/*
Named templates shared by the other templates. The chart keeps to a small
subset of Go templates (fields, if/else, with, include, toYaml, nindent, quote,
default) so that tests/cluster_files.rs can render it without Helm.
*/}}

{{/* The name of every object: the release name unless overridden. */}}
{{- define "orcaops.fullname" -}}
{{ .Values.fullnameOverride | default .Release.Name }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "orcaops.labels" -}}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
app.kubernetes.io/managed-by: Helm
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: orcaops
{{ include "orcaops.selectorLabels" . }}
{{- end }}

{{/* Labels that select the operator's pods: they must never change after install. */}}
{{- define "orcaops.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}
