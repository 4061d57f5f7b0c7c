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

{{/* The values every template renders from: .Values with the Datadog chart's keys for this job applied
beneath the chart's own (a key of this chart wins when both are set), the defaults of the keys both
charts have filled in, and what NOTES reports under "datadogChart": each datadog-chart key set and
whether it was read or ignored. One definition, so the templates and NOTES cannot disagree
(docs/migration.md has the table). Use: $v := include "xmetrics.values" . | fromYaml */}}
{{- define "xmetrics.values" -}}
{{- $v := deepCopy .Values }}
{{- $own := .Values.datadog | default dict }}
{{- $ca := .Values.clusterAgent | default dict }}
{{- $mp := $ca.metricsProvider | default dict }}
{{- $fullname := include "xmetrics.fullname" . }}
{{- $read := list }}
{{- $ignored := list }}
{{- $handled := list }}

{{- /* The Datadog keys. The datadog chart keeps them in two Secrets (keys api-key and app-key), the API
key optional as there; datadog.existingSecret (one Secret, this chart's) wins over both. Keys given as
values go into the Secret this chart creates. */}}
{{- $api := dict }}
{{- $app := dict }}
{{- $secretData := dict }}
{{- $handled = concat $handled (list "datadog.apiKeyExistingSecret" "datadog.appKeyExistingSecret") }}
{{- if $own.existingSecret }}
{{- $api = dict "name" $own.existingSecret "key" $own.apiKeySecretKey }}
{{- $app = dict "name" $own.existingSecret "key" $own.appKeySecretKey }}
{{- range $k := list "apiKeyExistingSecret" "appKeyExistingSecret" }}
{{- if index $own $k }}
{{- $ignored = append $ignored (printf "datadog.%s (datadog.existingSecret is set: it wins)" $k) }}
{{- end }}
{{- end }}
{{- else }}
{{- if $own.apiKeyExistingSecret }}
{{- $api = dict "name" $own.apiKeyExistingSecret "key" "api-key" "optional" true }}
{{- $read = append $read (printf "datadog.apiKeyExistingSecret → DD_API_KEY from Secret %s, key api-key (optional, as in the datadog chart)" $own.apiKeyExistingSecret) }}
{{- if $own.apiKey }}
{{- $ignored = append $ignored "datadog.apiKey (datadog.apiKeyExistingSecret wins, as in the datadog chart)" }}
{{- end }}
{{- else if $own.apiKey }}
{{- $api = dict "name" (printf "%s-datadog-keys" $fullname) "key" $own.apiKeySecretKey }}
{{- $_ := set $secretData $own.apiKeySecretKey (toString $own.apiKey) }}
{{- end }}
{{- if $own.appKeyExistingSecret }}
{{- $app = dict "name" $own.appKeyExistingSecret "key" "app-key" }}
{{- $read = append $read (printf "datadog.appKeyExistingSecret → DD_APP_KEY from Secret %s, key app-key" $own.appKeyExistingSecret) }}
{{- if $own.appKey }}
{{- $ignored = append $ignored "datadog.appKey (datadog.appKeyExistingSecret wins, as in the datadog chart)" }}
{{- end }}
{{- else if $own.appKey }}
{{- $app = dict "name" (printf "%s-datadog-keys" $fullname) "key" $own.appKeySecretKey }}
{{- $_ := set $secretData $own.appKeySecretKey (toString $own.appKey) }}
{{- end }}
{{- end }}

{{- /* backend "": datadog when any source of Datadog keys is configured, else embedded. */}}
{{- $backend := toString (.Values.backend | default "") }}
{{- if not $backend }}
{{- $backend = ternary "datadog" "embedded" (or (not (empty $api)) (not (empty $app))) }}
{{- end }}
{{- $_ := set $v "backend" $backend }}
{{- $_ = set $v "datadogKeys" (dict "api" $api "app" $app "secretData" (ternary $secretData dict (eq $backend "datadog"))) }}

{{- /* Settings both charts have: this chart's key when set, else the datadog chart's. */}}
{{- $clusterName := .Values.clusterName | default "" }}
{{- $handled = append $handled "datadog.clusterName" }}
{{- if $own.clusterName }}
{{- if $clusterName }}
{{- $ignored = append $ignored "datadog.clusterName (clusterName is set: it wins)" }}
{{- else }}
{{- $clusterName = $own.clusterName }}
{{- $read = append $read (printf "datadog.clusterName → --cluster-name=%s" $clusterName) }}
{{- end }}
{{- end }}
{{- $_ = set $v "clusterName" $clusterName }}

{{- /* Log levels in any case, as the Cluster Agent reads them (datadog.logLevel defaults to INFO there);
WARNING is warn. */}}
{{- $levels := list "trace" "debug" "info" "warn" "warning" "error" "critical" "off" }}
{{- $logLevel := lower (toString (.Values.logLevel | default "")) }}
{{- $handled = append $handled "datadog.logLevel" }}
{{- if $own.logLevel }}
{{- $ddLevel := lower (toString $own.logLevel) }}
{{- if not (has $ddLevel $levels) }}
{{- fail (printf "datadog.logLevel %q: must be one of trace, debug, info, warn, error, critical, off (any case)" (toString $own.logLevel)) }}
{{- end }}
{{- if $logLevel }}
{{- $ignored = append $ignored "datadog.logLevel (logLevel is set: it wins)" }}
{{- else }}
{{- $logLevel = $ddLevel }}
{{- $read = append $read (printf "datadog.logLevel → --log-level=%s" (ternary "warn" $ddLevel (eq $ddLevel "warning"))) }}
{{- end }}
{{- end }}
{{- $_ = set $v "logLevel" (ternary "warn" $logLevel (eq $logLevel "warning")) }}

{{- if $own.site }}
{{- $read = append $read "datadog.site → DD_SITE" }}
{{- end }}
{{- range $k := list "apiKey" "appKey" }}
{{- if and (index $own $k) (hasKey $secretData (index $own (printf "%sSecretKey" $k))) }}
{{- $read = append $read (printf "datadog.%s → the Secret %s-datadog-keys" $k $fullname) }}
{{- end }}
{{- end }}

{{- /* datadog.secretBackend: the Cluster Agent's variables, passed as they are. */}}
{{- $extraDDEnv := list }}
{{- $sb := $own.secretBackend | default dict }}
{{- range $k, $name := dict "command" "DD_SECRET_BACKEND_COMMAND" "arguments" "DD_SECRET_BACKEND_ARGUMENTS" "timeout" "DD_SECRET_BACKEND_TIMEOUT" }}
{{- $handled = append $handled (printf "datadog.secretBackend.%s" $k) }}
{{- if not (eq (toString (index $sb $k | default "")) "") }}
{{- $extraDDEnv = append $extraDDEnv (dict "name" $name "value" (toString (index $sb $k))) }}
{{- $read = append $read (printf "datadog.secretBackend.%s → %s" $k $name) }}
{{- end }}
{{- end }}
{{- $_ = set $v "datadogChartEnv" $extraDDEnv }}

{{- /* clusterAgent.metricsProvider. enabled=false is noted, not an error: after the cutover the same
values file turns the Cluster Agent's provider off (docs/migration.md). */}}
{{- $handled = append $handled "clusterAgent.metricsProvider.enabled" }}
{{- if hasKey $mp "enabled" }}
{{- $ignored = append $ignored (printf "clusterAgent.metricsProvider.enabled=%v (%s)" $mp.enabled (ternary "xmetrics is the metrics provider" "turns the Cluster Agent's provider off; xmetrics serves either way" (eq (toString $mp.enabled) "true"))) }}
{{- end }}
{{- $handled = append $handled "clusterAgent.metricsProvider.useDatadogMetrics" }}
{{- if hasKey $mp "useDatadogMetrics" }}
{{- if $mp.useDatadogMetrics }}
{{- $_ = set $v "useDatadogMetricCrd" true }}
{{- $read = append $read "clusterAgent.metricsProvider.useDatadogMetrics → useDatadogMetricCrd=true (--use-datadogmetric-crd, DatadogMetric RBAC)" }}
{{- else if .Values.useDatadogMetricCrd }}
{{- $ignored = append $ignored "clusterAgent.metricsProvider.useDatadogMetrics=false (useDatadogMetricCrd=true wins)" }}
{{- else }}
{{- $read = append $read "clusterAgent.metricsProvider.useDatadogMetrics=false → useDatadogMetricCrd=false" }}
{{- end }}
{{- end }}
{{- $handled = append $handled "clusterAgent.metricsProvider.aggregator" }}
{{- if $mp.aggregator }}
{{- if .Values.aggregator }}
{{- $ignored = append $ignored "clusterAgent.metricsProvider.aggregator (aggregator is set: it wins)" }}
{{- else }}
{{- $_ = set $v "aggregator" $mp.aggregator }}
{{- $read = append $read (printf "clusterAgent.metricsProvider.aggregator → --aggregator=%s" $mp.aggregator) }}
{{- end }}
{{- end }}
{{- $handled = append $handled "clusterAgent.metricsProvider.endpoint" }}
{{- if $mp.endpoint }}
{{- if $own.endpoint }}
{{- $ignored = append $ignored "clusterAgent.metricsProvider.endpoint (datadog.endpoint is set: it wins)" }}
{{- else }}
{{- $_ = set $v.datadog "endpoint" $mp.endpoint }}
{{- $read = append $read "clusterAgent.metricsProvider.endpoint → DD_EXTERNAL_METRICS_PROVIDER_ENDPOINT" }}
{{- end }}
{{- end }}
{{- $handled = append $handled "clusterAgent.metricsProvider.registerAPIService" }}
{{- if hasKey $mp "registerAPIService" }}
{{- if $mp.registerAPIService }}
{{- $read = append $read "clusterAgent.metricsProvider.registerAPIService=true → the APIService (apiService.create)" }}
{{- else }}
{{- $_ = set $v.apiService "create" false }}
{{- $read = append $read "clusterAgent.metricsProvider.registerAPIService=false → no APIService (apiService.create=false)" }}
{{- end }}
{{- end }}
{{- $handled = append $handled "clusterAgent.metricsProvider.createReaderRbac" }}
{{- $_ = set $v.rbac "createReaderRbac" true }}
{{- if hasKey $mp "createReaderRbac" }}
{{- $_ = set $v.rbac "createReaderRbac" (eq (toString $mp.createReaderRbac) "true") }}
{{- $read = append $read (printf "clusterAgent.metricsProvider.createReaderRbac=%v → %s" $mp.createReaderRbac (ternary "the HPA controller's external-metrics-reader RBAC" "no external-metrics-reader RBAC for the HPA controller" (eq (toString $mp.createReaderRbac) "true"))) }}
{{- end }}

{{- /* Keys whose own default is null, so "set" is known: the datadog chart's value applies beneath. */}}
{{- $svcPort := .Values.service.port }}
{{- $handled = append $handled "clusterAgent.metricsProvider.service.port" }}
{{- if and $mp.service (hasKey $mp.service "port") }}
{{- if not (kindIs "invalid" $svcPort) }}
{{- $ignored = append $ignored "clusterAgent.metricsProvider.service.port (service.port is set: it wins)" }}
{{- else }}
{{- $svcPort = $mp.service.port }}
{{- $read = append $read (printf "clusterAgent.metricsProvider.service.port → service.port=%v" $svcPort) }}
{{- end }}
{{- end }}
{{- $_ = set $v.service "port" (ternary 443 $svcPort (kindIs "invalid" $svcPort)) }}
{{- range $k, $m := dict "replicaCount" (list "replicas" 2) "resources" (list "resources" (dict "requests" (dict "cpu" "50m" "memory" "32Mi") "limits" (dict "memory" "128Mi"))) }}
{{- $ddKey := index $m 0 }}
{{- $value := index $.Values $k }}
{{- $handled = append $handled (printf "clusterAgent.%s" $ddKey) }}
{{- if hasKey $ca $ddKey }}
{{- if not (kindIs "invalid" $value) }}
{{- $ignored = append $ignored (printf "clusterAgent.%s (%s is set: it wins)" $ddKey $k) }}
{{- else }}
{{- $value = index $ca $ddKey }}
{{- $read = append $read (printf "clusterAgent.%s → %s%s" $ddKey $k (ternary (printf "=%v" $value) "" (kindIs "float64" $value))) }}
{{- end }}
{{- end }}
{{- $_ := set $v $k (ternary (index $m 1) $value (kindIs "invalid" $value)) }}
{{- end }}

{{- /* Pod settings: this chart's when not empty, else the datadog chart's; annotations and labels merge
(this chart's win per key). */}}
{{- range $k, $ddPath := dict "nodeSelector" "nodeSelector" "tolerations" "tolerations" "affinity" "affinity" "priorityClassName" "priorityClassName" "topologySpreadConstraints" "topologySpreadConstraints" "podSecurityContext" "securityContext" "securityContext" "containers.clusterAgent.securityContext" }}
{{- $handled = append $handled (printf "clusterAgent.%s" $ddPath) }}
{{- $ddValue := $ca }}
{{- $isSet := true }}
{{- range $part := splitList "." $ddPath }}
{{- if and $isSet (kindIs "map" $ddValue) (hasKey $ddValue $part) }}
{{- $ddValue = index $ddValue $part }}
{{- else }}
{{- $isSet = false }}
{{- end }}
{{- end }}
{{- if $isSet }}
{{- if index $.Values $k }}
{{- $ignored = append $ignored (printf "clusterAgent.%s (%s is set: it wins)" $ddPath $k) }}
{{- else }}
{{- $_ := set $v $k $ddValue }}
{{- $read = append $read (printf "clusterAgent.%s → %s" $ddPath $k) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $k := list "podAnnotations" "podLabels" }}
{{- $handled = append $handled (printf "clusterAgent.%s" $k) }}
{{- with index $ca $k }}
{{- $_ := set $v $k (merge (deepCopy (index $.Values $k | default dict)) .) }}
{{- $read = append $read (printf "clusterAgent.%s → %s (merged, this chart's keys win)" $k $k) }}
{{- end }}
{{- end }}
{{- $handled = append $handled "clusterAgent.createPodDisruptionBudget" }}
{{- if hasKey $ca "createPodDisruptionBudget" }}
{{- if kindIs "bool" .Values.podDisruptionBudget.enabled }}
{{- $ignored = append $ignored "clusterAgent.createPodDisruptionBudget (podDisruptionBudget.enabled is set: it wins)" }}
{{- else }}
{{- $_ = set $v.podDisruptionBudget "enabled" (eq (toString $ca.createPodDisruptionBudget) "true") }}
{{- $read = append $read "clusterAgent.createPodDisruptionBudget → podDisruptionBudget.enabled" }}
{{- end }}
{{- end }}

{{- /* clusterAgent.env, then envDict: appended after every other env entry, as the datadog chart does. */}}
{{- $caEnv := list }}
{{- $handled = concat $handled (list "clusterAgent.env" "clusterAgent.envDict") }}
{{- with $ca.env }}
{{- $caEnv = concat $caEnv . }}
{{- $read = append $read "clusterAgent.env → the container env, last" }}
{{- end }}
{{- with $ca.envDict }}
{{- range $name, $value := . }}
{{- $caEnv = append $caEnv (dict "name" $name "value" (toString $value)) }}
{{- end }}
{{- $read = append $read "clusterAgent.envDict → the container env, last" }}
{{- end }}
{{- $_ = set $v "clusterAgentEnv" $caEnv }}
{{- $ddEnv := list }}
{{- range $caEnv }}
{{- if hasPrefix "DD_" (toString .name) }}
{{- $ddEnv = append $ddEnv .name }}
{{- end }}
{{- end }}

{{- /* Every other datadog-chart key set: ignored, with the reason. */}}
{{- $roots := list }}
{{- range $k := include "xmetrics.datadogChartKeys" . | fromYamlArray }}
{{- if hasKey $.Values $k }}
{{- $roots = append $roots (dict "prefix" $k "value" (index $.Values $k)) }}
{{- end }}
{{- end }}
{{- $ownDatadog := keys (include "xmetrics.ownDatadogKeys" . | fromYaml) }}
{{- range $k, $value := $own }}
{{- if not (has $k $ownDatadog) }}
{{- $roots = append $roots (dict "prefix" (printf "datadog.%s" $k) "value" $value) }}
{{- end }}
{{- end }}
{{- $leaves := list }}
{{- range $roots }}
{{- $leaves = concat $leaves (compact (splitList "\n" (include "xmetrics.leaves" .))) }}
{{- end }}
{{- $reasons := include "xmetrics.ignoredReasons" . | fromYamlArray }}
{{- range $leaf := $leaves }}
{{- $done := false }}
{{- range $handled }}
{{- if or (eq $leaf .) (hasPrefix (printf "%s." .) $leaf) }}{{ $done = true }}{{ end }}
{{- end }}
{{- if not $done }}
{{- $why := "not used by xmetrics" }}
{{- $found := false }}
{{- range $reasons }}
{{- if and (not $found) (or (eq $leaf (index . 0)) (hasPrefix (printf "%s." (index . 0)) $leaf)) }}
{{- $why = index . 1 }}{{ $found = true }}
{{- end }}
{{- end }}
{{- $ignored = append $ignored (printf "%s (%s)" $leaf $why) }}
{{- end }}
{{- end }}
{{- $_ = set $v "datadogChart" (dict "present" (gt (len $leaves) 0) "read" $read "ignored" $ignored "ddEnv" $ddEnv) }}
{{- toYaml $v }}
{{- end }}

{{/* The leaves under a value, one path a line: maps are walked, lists and scalars are leaves. */}}
{{- define "xmetrics.leaves" -}}
{{- if and (kindIs "map" .value) (gt (len .value) 0) }}
{{- range $k, $val := .value }}
{{ include "xmetrics.leaves" (dict "prefix" (printf "%s.%s" $.prefix $k) "value" $val) }}
{{- end }}
{{- else }}
{{ .prefix }}
{{- end }}
{{- end }}

{{/* The datadog chart's top-level values keys that are not this chart's own (values.schema.json
accepts them). "datadog" is shared: its subkeys outside xmetrics.ownDatadogKeys are the datadog chart's. */}}
{{- define "xmetrics.datadogChartKeys" -}}
[agents, clusterAgent, clusterChecksRunner, commonLabels, datadog-crds, datadog-csi-driver, existingClusterAgent, fips, kube-state-metrics, operator, otelAgentGateway, privateActionRunner, providers, registry, registryMigrationMode, remoteConfiguration, serviceAccounts, targetSystem, useFIPSAgent]
{{- end }}

{{/* This chart's own keys under datadog (values.yaml). */}}
{{- define "xmetrics.ownDatadogKeys" -}}
{site: 1, endpoint: 1, endpoints: 1, proxy: 1, chunkSize: 1, maxParallelQueries: 1, timeout: 1, endpointBackoff: 1, existingSecret: 1, apiKeySecretKey: 1, appKeySecretKey: 1, apiKey: 1, appKey: 1, keysAsFiles: 1}
{{- end }}

{{/* Why a datadog-chart key does not apply, by path prefix; the first match wins. */}}
{{- define "xmetrics.ignoredReasons" -}}
- [agents, "the node Agent DaemonSet: xmetrics runs no node Agent"]
- [clusterChecksRunner, "cluster checks: not part of the metrics provider"]
- [otelAgentGateway, "the OTel Agent gateway: not part of the metrics provider"]
- [privateActionRunner, "the private action runner: not part of the metrics provider"]
- [kube-state-metrics, "the kube-state-metrics subchart: not used"]
- [datadog-crds, "the CRD subchart: the chart installs the DatadogMetric CRD itself (datadogMetric.installCRD)"]
- [datadog-csi-driver, "the CSI driver subchart: not used"]
- [operator, "the Datadog Operator subchart: not used"]
- [existingClusterAgent, "node Agents joining another Cluster Agent: no node Agents here"]
- [serviceAccounts, "not a key of the datadog chart either; this chart's is serviceAccount.*"]
- [providers, "platform settings of the node Agent"]
- [fips, "the Agents' FIPS images"]
- [useFIPSAgent, "the Agents' FIPS images"]
- [registry, "the Agents' image registry: this chart's image is image.repository"]
- [registryMigrationMode, "the Agents' image registry: this chart's image is image.repository"]
- [targetSystem, "the Agents' OS: xmetrics runs on Linux nodes"]
- [commonLabels, "labels of the datadog chart's objects"]
- [remoteConfiguration, "Remote Configuration: not used"]
- [clusterAgent.enabled, "xmetrics is always deployed"]
- [clusterAgent.image, "the Cluster Agent image: this chart's is image.*"]
- [clusterAgent.rbac, "the Cluster Agent's RBAC: this chart's is rbac.create and serviceAccount.*"]
- [clusterAgent.metricsProvider.wpaController, "WatermarkPodAutoscaler: not supported"]
- [clusterAgent.metricsProvider.service.type, "this chart's is service.type"]
- [clusterAgent.token, "the node Agents' token: no node Agents talk to xmetrics"]
- [clusterAgent.tokenExistingSecret, "the node Agents' token: no node Agents talk to xmetrics"]
- [clusterAgent.admissionController, "the admission controller: not part of the metrics provider"]
- [clusterAgent.command, "the Cluster Agent's entrypoint"]
- [clusterAgent.args, "the Cluster Agent's entrypoint"]
- [clusterAgent.healthPort, "xmetrics' probes are /livez and /readyz on its HTTPS port"]
- [clusterAgent.livenessProbe, "xmetrics' probes are /livez and /readyz on its HTTPS port"]
- [clusterAgent.readinessProbe, "xmetrics' probes are /livez and /readyz on its HTTPS port"]
- [clusterAgent.startupProbe, "xmetrics' probes are /livez and /readyz on its HTTPS port"]
- [clusterAgent.envFrom, "not read: use extraEnv or clusterAgent.env"]
- [clusterAgent, "a Cluster Agent setting outside the metrics provider"]
- [datadog.kubeStateMetricsEnabled, "the kube-state-metrics subchart: not used"]
- [datadog.kubeStateMetricsCore, "a Cluster Agent check: not part of the metrics provider"]
- [datadog.kubeStateMetricsNetworkPolicy, "the kube-state-metrics subchart: not used"]
- [datadog.operator, "the Datadog Operator subchart: not used"]
- [datadog.csi, "the CSI driver subchart: not used"]
- [datadog.dd_url, "the intake URL, not the query API: this chart's is datadog.endpoint"]
- [datadog.env, "the Agents' env: xmetrics reads clusterAgent.env and extraEnv"]
- [datadog.envFrom, "the Agents' env: xmetrics reads clusterAgent.env and extraEnv"]
- [datadog.leaderElection, "this chart's is leaderElection.*"]
- [datadog.leaderLeaseDuration, "this chart's is leaderElection.leaseDuration"]
- [datadog.secretBackend, "only command, arguments and timeout are passed"]
- [datadog, "a node Agent or Cluster Agent feature outside the metrics provider"]
{{- end }}

{{/* The Secret holding the Datadog keys that the chart creates from datadog.apiKey / datadog.appKey. */}}
{{- define "xmetrics.datadogKeysSecret" -}}
{{- printf "%s-datadog-keys" (include "xmetrics.fullname" .) }}
{{- end }}

{{/* The chart creates the keys Secret: datadog backend, a key given as a value. */}}
{{- define "xmetrics.createDatadogKeysSecret" -}}
{{- $v := include "xmetrics.values" . | fromYaml }}
{{- if and (eq $v.backend "datadog") $v.datadogKeys.secretData }}true{{ end }}
{{- end }}

{{/* What the cluster holds already, by Helm's lookup (empty under `helm template` and
`--dry-run=client`, which have no cluster): the DatadogMetric CRD and the APIService, each with
exists, ours (annotated for this release: Helm adopts it) and owner. */}}
{{- define "xmetrics.live" -}}
{{- $out := dict }}
{{- range $name, $obj := dict "crd" (lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" "datadogmetrics.datadoghq.com") "apiService" (lookup "apiregistration.k8s.io/v1" "APIService" "" "v1beta1.external.metrics.k8s.io") }}
{{- $e := dict "exists" false "ours" false "owner" "" }}
{{- if $obj }}
{{- $a := $obj.metadata.annotations | default dict }}
{{- $rel := index $a "meta.helm.sh/release-name" | default "" }}
{{- $ns := index $a "meta.helm.sh/release-namespace" | default "" }}
{{- $_ := set $e "exists" true }}
{{- $_ = set $e "ours" (and (eq $rel $.Release.Name) (eq $ns $.Release.Namespace)) }}
{{- $_ = set $e "owner" (ternary (printf "Helm release %s/%s" $ns $rel) "no Helm release" (ne $rel "")) }}
{{- $_ = set $e "keep" (eq (index $a "helm.sh/resource-policy" | default "") "keep") }}
{{- if $obj.spec }}
{{- $_ = set $e "service" ($obj.spec.service | default dict) }}
{{- end }}
{{- end }}
{{- $_ := set $out $name $e }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/* DatadogMetric CRD installed by this release: CRD mode, datadogMetric.installCRD, and no CRD in the
cluster that another release (or none) owns: the Cluster Agent's stays where it is. */}}
{{- define "xmetrics.installCRD" -}}
{{- $v := include "xmetrics.values" . | fromYaml }}
{{- if and $v.useDatadogMetricCrd $v.datadogMetric.installCRD }}
{{- $live := (include "xmetrics.live" . | fromYaml).crd }}
{{- if or (not $live.exists) $live.ours }}true{{ end }}
{{- end }}
{{- end }}

{{/* The APIService rendered by this release: apiService.create, not apiService.takeOver. */}}
{{- define "xmetrics.renderAPIService" -}}
{{- $v := include "xmetrics.values" . | fromYaml }}
{{- if and $v.apiService.create (not $v.apiService.takeOver) }}true{{ end }}
{{- end }}

{{/* PodDisruptionBudget: as podDisruptionBudget.enabled says, else when replicaCount > 1. */}}
{{- define "xmetrics.pdbEnabled" -}}
{{- $v := include "xmetrics.values" . | fromYaml }}
{{- $e := $v.podDisruptionBudget.enabled }}
{{- if kindIs "bool" $e }}{{ if $e }}true{{ end }}
{{- else if gt (int $v.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/* Every check of the values, so a mistake fails `helm template`/`install` with one clear message
rather than a pod that crash-loops. Never prints a key. */}}
{{- define "xmetrics.validate" -}}
{{- $v := include "xmetrics.values" . | fromYaml }}
{{- if not (has $v.backend (list "embedded" "datadog" "prometheus")) }}
{{- fail (printf "backend %q: must be one of embedded, datadog, prometheus" (toString $v.backend)) }}
{{- end }}
{{- if eq $v.backend "datadog" }}
{{- $d := .Values.datadog }}
{{- if and $d.existingSecret (or $d.apiKey $d.appKey) }}
{{- fail "datadog: set either existingSecret or apiKey/appKey, not both (the keys would be ignored)" }}
{{- end }}
{{- if not (and $v.datadogKeys.api $v.datadogKeys.app) }}
{{- fail "backend datadog needs its keys: datadog.existingSecret (a Secret with api-key and app-key), or both datadog.apiKey and datadog.appKey, or the datadog chart's datadog.apiKeyExistingSecret and datadog.appKeyExistingSecret" }}
{{- end }}
{{- end }}
{{- if and (eq $v.backend "prometheus") (not .Values.prometheus.url) }}
{{- fail "backend prometheus needs prometheus.url (e.g. http://prometheus-server.monitoring:80)" }}
{{- end }}
{{- $cert := .Values.servingCert }}
{{- $apiService := or $v.apiService.create $v.apiService.takeOver }}
{{- if and (eq $cert.mode "cert-manager") (not (regexMatch "^[0-9]+h$" $cert.validity)) }}
{{- fail "servingCert.validity must be whole hours (e.g. 8760h) with mode cert-manager: the chart's CA lives 10 times as long" }}
{{- end }}
{{- if and (eq $cert.mode "generated") (not $cert.injectCaBundle) $apiService }}
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
{{- if and $v.apiService.takeOver (eq $cert.mode "cert-manager") }}
{{- fail "apiService.takeOver needs servingCert.mode generated or secret: cert-manager's CA injector only fills an APIService this release renders" }}
{{- end }}
{{- if include "xmetrics.renderAPIService" . }}
{{- $live := (include "xmetrics.live" . | fromYaml).apiService }}
{{- if and $live.exists (not $live.ours) }}
{{- fail (printf "the APIService v1beta1.external.metrics.k8s.io exists and belongs to %s: annotate it for this release (meta.helm.sh/release-name=%s, meta.helm.sh/release-namespace=%s, see docs/migration.md), or set apiService.takeOver=true" $live.owner .Release.Name .Release.Namespace) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Whether xmetrics sets the APIService's caBundle itself (--inject-ca-bundle): "true" or "". */}}
{{- define "xmetrics.injectsCaBundle" -}}
{{- $v := include "xmetrics.values" . | fromYaml -}}
{{- $cert := .Values.servingCert -}}
{{- if and (or $v.apiService.create $v.apiService.takeOver) $cert.injectCaBundle (ne $cert.mode "cert-manager") (not .Values.apiService.caBundle) (not .Values.apiService.insecureSkipTLSVerify) -}}true{{- end -}}
{{- end }}

{{/* cert-manager mode: the Certificate of the serving certificate, and the client certificate's Secret. */}}
{{- define "xmetrics.servingCertificateName" -}}
{{- printf "%s-serving" (include "xmetrics.fullname" .) }}
{{- end }}
{{- define "xmetrics.clientCertSecret" -}}
{{- printf "%s-client-cert" (include "xmetrics.fullname" .) }}
{{- end }}
