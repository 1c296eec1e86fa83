{{/*
Base of every object name: the chart name (cert-manager-csi-driver-spiffe, as cert-manager's chart)
or nameOverride.
*/}}
{{- define "csi-spiffe.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The ServiceAccount, ClusterRole, Role and bindings of the driver share the base name. */}}
{{- define "csi-spiffe.driverName" -}}
{{- include "csi-spiffe.name" . -}}
{{- end -}}

{{/* ServiceAccount, roles, Deployment and container of the approver. */}}
{{- define "csi-spiffe.approverName" -}}
{{- printf "%s-approver" (include "csi-spiffe.name" .) -}}
{{- end -}}

{{/* ServiceAccount, roles, Deployment and container of the Pod Certificate signer. */}}
{{- define "csi-spiffe.signerName" -}}
{{- printf "%s-signer" (include "csi-spiffe.name" .) -}}
{{- end -}}

{{/* helm.sh/chart label value. */}}
{{- define "csi-spiffe.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "csi-spiffe.labels" -}}
app.kubernetes.io/name: {{ include "csi-spiffe.name" . }}
helm.sh/chart: {{ include "csi-spiffe.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The kubelet paths, all under .Values.kubeletRootDir.
*/}}
{{- define "csi-spiffe.kubeletRoot" -}}
{{- .Values.kubeletRootDir | trimSuffix "/" -}}
{{- end -}}
{{- define "csi-spiffe.pluginDir" -}}
{{- printf "%s/plugins/%s" (include "csi-spiffe.kubeletRoot" .) (include "csi-spiffe.name" .) -}}
{{- end -}}

{{/*
An image reference. Argument: (list <image values> <imageRegistry> <imageNamespace> <default reference>).

1. repository if set, otherwise [imageRegistry/][imageNamespace/]name;
2. the deprecated per-image registry prepended if set (in both cases);
3. then :tag@digest, :tag, @digest, or the default reference (":<appVersion>" or _defaultReference).
*/}}
{{- define "csi-spiffe.image" -}}
{{- $img := index . 0 -}}
{{- $registry := index . 1 | default "" -}}
{{- $namespace := index . 2 | default "" -}}
{{- $default := index . 3 -}}
{{- $ref := "" -}}
{{- if $img.repository -}}
{{- $ref = $img.repository -}}
{{- else -}}
{{- $ref = required "an image needs either repository or name" $img.name -}}
{{- if $namespace }}{{ $ref = printf "%s/%s" $namespace $ref }}{{ end -}}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry $ref }}{{ end -}}
{{- end -}}
{{- if $img.registry }}{{ $ref = printf "%s/%s" $img.registry $ref }}{{ end -}}
{{- if and $img.tag $img.digest -}}
{{- printf "%s:%s@%s" $ref $img.tag $img.digest -}}
{{- else if $img.tag -}}
{{- printf "%s:%s" $ref $img.tag -}}
{{- else if $img.digest -}}
{{- printf "%s@%s" $ref $img.digest -}}
{{- else -}}
{{- printf "%s%s" $ref $default -}}
{{- end -}}
{{- end -}}

{{/*
Effective settings of the driver or approver image: the deprecated `image` section wins field by
field over driverImage/approverImage. Argument: (list $ "driver"|"approver"). Returns JSON.
*/}}
{{- define "csi-spiffe.componentImage" -}}
{{- $root := index . 0 -}}
{{- $which := index . 1 -}}
{{- $new := ternary $root.Values.driverImage $root.Values.approverImage (eq $which "driver") -}}
{{- $legacy := $root.Values.image | default dict -}}
{{- $legacyRepo := $legacy.repository | default dict -}}
{{- $legacyDigest := $legacy.digest | default dict -}}
{{- $out := dict "name" $new.name -}}
{{- $_ := set $out "registry" ($legacy.registry | default $new.registry) -}}
{{- $_ := set $out "repository" ((get $legacyRepo $which) | default $new.repository) -}}
{{- $_ := set $out "tag" ($legacy.tag | default $new.tag) -}}
{{- $_ := set $out "digest" ((get $legacyDigest $which) | default $new.digest) -}}
{{- $_ := set $out "pullPolicy" ($legacy.pullPolicy | default $new.pullPolicy) -}}
{{- toJson $out -}}
{{- end -}}

{{/* Whether the OpenShift SCC rule is rendered: explicit bool, or "detect" and the API exists. */}}
{{- define "csi-spiffe.sccEnabled" -}}
{{- $v := .Values.openshift.securityContextConstraint.enabled -}}
{{- if kindIs "bool" $v -}}
{{- ternary "true" "" $v -}}
{{- else if and (kindIs "string" $v) (eq $v "detect") (.Capabilities.APIVersions.Has "security.openshift.io/v1") -}}
true
{{- end -}}
{{- end -}}

{{/* Scheduling fields shared by both pod specs (topologySpreadConstraints is approver-only). */}}
{{- define "csi-spiffe.podScheduling" -}}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
automountServiceAccountToken: {{ .Values.automountServiceAccountToken }}
{{- end -}}

{{/*
Flags both binaries take with the same values. The runtime ConfigMap flags are rendered only when
a ConfigMap is named (the binaries also accept the original chart's empty name with a namespace).
*/}}
{{- define "csi-spiffe.commonArgs" -}}
- --log-level={{ .Values.app.logLevel }}
- --logging-format={{ .Values.app.logFormat }}
- --csi-driver-name={{ .Values.app.name }}
- --certificate-request-duration={{ .Values.app.certificateRequestDuration }}
- --issuer-name={{ .Values.app.issuer.name }}
- --issuer-kind={{ .Values.app.issuer.kind }}
- --issuer-group={{ .Values.app.issuer.group }}
- --trust-domain={{ .Values.app.trustDomain }}
{{- with .Values.app.runtimeIssuanceConfigMap }}
- --runtime-issuance-config-map-name={{ . }}
- --runtime-issuance-config-map-namespace={{ $.Release.Namespace }}
{{- end }}
{{- end -}}

{{/* A ServiceMonitor. Argument: (list $ <name> <app label> <servicemonitor values> <port>). */}}
{{- define "csi-spiffe.serviceMonitor" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $app := index . 2 -}}
{{- $sm := index . 3 -}}
{{- $port := index . 4 -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    app: {{ $app }}
    {{- include "csi-spiffe.labels" $root | nindent 4 }}
    prometheus: {{ $sm.prometheusInstance }}
    {{- with $sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  jobLabel: {{ $app }}
  selector:
    matchLabels:
      app: {{ $app }}
  namespaceSelector:
    matchNames:
      - {{ $root.Release.Namespace }}
  endpoints:
    - targetPort: {{ $port }}
      path: /metrics
      interval: {{ $sm.interval }}
      scrapeTimeout: {{ $sm.scrapeTimeout }}
{{- end -}}

{{/* A metrics Service. Argument: (list $ <name> <app label> <service values> <port>). */}}
{{- define "csi-spiffe.metricsService" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $app := index . 2 -}}
{{- $svc := index . 3 -}}
{{- $port := index . 4 -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    app: {{ $app }}
    {{- include "csi-spiffe.labels" $root | nindent 4 }}
spec:
  type: {{ $svc.type }}
  ports:
    - name: metrics
      port: {{ $port }}
      targetPort: {{ $port }}
      protocol: TCP
  selector:
    app: {{ $app }}
{{- end -}}
