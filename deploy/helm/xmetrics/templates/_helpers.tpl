{{/* Names and labels. */}}

{{- define "xmetrics.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release name if it contains the chart name ("xmetrics": the names of deploy/manifests), else
<release>-xmetrics. */}}
{{- define "xmetrics.fullname" -}}
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

{{- define "xmetrics.selectorLabels" -}}
app.kubernetes.io/name: {{ include "xmetrics.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "xmetrics.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "xmetrics.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "xmetrics.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "xmetrics.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "xmetrics.servingCertSecret" -}}
{{- default (printf "%s-serving-cert" (include "xmetrics.fullname" .)) .Values.servingCert.secretName }}
{{- end }}

{{/* The Secret holding the Datadog keys: the user's, or the one the chart creates from apiKey/appKey. */}}
{{- define "xmetrics.datadogKeysSecret" -}}
{{- if .Values.datadog.existingSecret }}
{{- .Values.datadog.existingSecret }}
{{- else }}
{{- printf "%s-datadog-keys" (include "xmetrics.fullname" .) }}
{{- end }}
{{- end }}

{{/* The chart creates the keys Secret: datadog backend, keys given as values. */}}
{{- define "xmetrics.createDatadogKeysSecret" -}}
{{- if and (eq .Values.backend "datadog") (not .Values.datadog.existingSecret) }}true{{ end }}
{{- end }}

{{/* DatadogMetric CRD installed by this release. */}}
{{- define "xmetrics.installCRD" -}}
{{- if and .Values.useDatadogMetricCrd .Values.datadogMetric.installCRD }}true{{ end }}
{{- end }}

{{/* PodDisruptionBudget: as podDisruptionBudget.enabled says, else when replicaCount > 1. */}}
{{- define "xmetrics.pdbEnabled" -}}
{{- $e := .Values.podDisruptionBudget.enabled }}
{{- if kindIs "bool" $e }}{{ if $e }}true{{ end }}
{{- else if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/* Every check of the values, so a mistake fails `helm template`/`install` with one clear message
rather than a pod that crash-loops. Never prints a key. */}}
{{- define "xmetrics.validate" -}}
{{- if not (has .Values.backend (list "embedded" "datadog" "prometheus")) }}
{{- fail (printf "backend %q: must be one of embedded, datadog, prometheus" (toString .Values.backend)) }}
{{- end }}
{{- if eq .Values.backend "datadog" }}
{{- $d := .Values.datadog }}
{{- if and $d.existingSecret (or $d.apiKey $d.appKey) }}
{{- fail "datadog: set either existingSecret or apiKey/appKey, not both (the keys would be ignored)" }}
{{- end }}
{{- if and (not $d.existingSecret) (not (and $d.apiKey $d.appKey)) }}
{{- fail "backend datadog needs its keys: datadog.existingSecret (a Secret with api-key and app-key), or both datadog.apiKey and datadog.appKey" }}
{{- end }}
{{- end }}
{{- if and (eq .Values.backend "prometheus") (not .Values.prometheus.url) }}
{{- fail "backend prometheus needs prometheus.url (e.g. http://prometheus-server.monitoring:80)" }}
{{- end }}
{{- $cert := .Values.servingCert }}
{{- if and (eq $cert.mode "cert-manager") (not (regexMatch "^[0-9]+h$" $cert.validity)) }}
{{- fail "servingCert.validity must be whole hours (e.g. 8760h) with mode cert-manager: the chart's CA lives 10 times as long" }}
{{- end }}
{{- if and (eq $cert.mode "generated") (not $cert.injectCaBundle) .Values.apiService.create }}
{{- fail "servingCert.mode generated with injectCaBundle=false leaves the APIService without a caBundle (its CA is only known once xmetrics made it): keep injectCaBundle, or use mode secret" }}
{{- end }}
{{- if and (ne $cert.mode "secret") .Values.apiService.caBundle }}
{{- fail "apiService.caBundle is only for servingCert.mode secret (generated and cert-manager inject the CA themselves)" }}
{{- end }}
{{- if and .Values.apiService.insecureSkipTLSVerify (ne $cert.mode "secret") }}
{{- fail "apiService.insecureSkipTLSVerify=true turns off the verified TLS of servingCert.mode generated/cert-manager; use mode secret for it" }}
{{- end }}
{{- if and .Values.apiService.caBundle .Values.apiService.insecureSkipTLSVerify }}
{{- fail "apiService: caBundle and insecureSkipTLSVerify=true cannot both be set (Kubernetes rejects it)" }}
{{- end }}
{{- end }}

{{/* Whether xmetrics sets the APIService's caBundle itself (--inject-ca-bundle): "true" or "". */}}
{{- define "xmetrics.injectsCaBundle" -}}
{{- $cert := .Values.servingCert -}}
{{- if and .Values.apiService.create $cert.injectCaBundle (ne $cert.mode "cert-manager") (not .Values.apiService.caBundle) (not .Values.apiService.insecureSkipTLSVerify) -}}true{{- end -}}
{{- end }}

{{/* cert-manager mode: the Certificate of the serving certificate, and the client certificate's Secret. */}}
{{- define "xmetrics.servingCertificateName" -}}
{{- printf "%s-serving" (include "xmetrics.fullname" .) }}
{{- end }}
{{- define "xmetrics.clientCertSecret" -}}
{{- printf "%s-client-cert" (include "xmetrics.fullname" .) }}
{{- end }}
