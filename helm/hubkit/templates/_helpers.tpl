{{/*
Prefix of every hubkit object's name: the release name if it contains "hubkit" (the documented
`helm install hubkit ...` keeps the names hubkit-env, hubkit-storage, ...), else
<release>-hubkit. Two releases in one namespace so get disjoint names. The hub's and the
gateway's configuration (values.yaml, jupyterhub.hub.extraConfig and
dask-gateway.gateway.extraConfig) derive the same prefix at run time: keep them in step.
*/}}
{{- define "hubkit.fullname" -}}
{{- if contains "hubkit" .Release.Name -}}
{{- .Release.Name -}}
{{- else -}}
{{- printf "%s-hubkit" .Release.Name -}}
{{- end -}}
{{- end }}

{{/* Labels every hubkit object carries; "component" names the part (config, watch, ...). */}}
{{- define "hubkit.labels" -}}
app.kubernetes.io/name: hubkit
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/component: {{ .component }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The labels a Deployment selects its pods by. */}}
{{- define "hubkit.selectorLabels" -}}
app.kubernetes.io/name: hubkit
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Pod security context of hubkit's own pods. */}}
{{- define "hubkit.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.security.runAsUser }}
runAsGroup: {{ .Values.security.runAsGroup }}
fsGroup: {{ .Values.security.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* Container security context of hubkit's own containers. */}}
{{- define "hubkit.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* image "name:tag" from an {name, tag} mapping. */}}
{{- define "hubkit.image" -}}
{{ .name }}:{{ .tag }}
{{- end }}

{{/* HUBKIT_STORE for the storage settings. */}}
{{- define "hubkit.storeUrl" -}}
{{- if eq .Values.storage.type "inCluster" -}}
s3://{{ .Values.storage.inCluster.bucket }}/store
{{- else -}}
s3://{{ .Values.storage.s3.bucket }}{{ with .Values.storage.s3.prefix }}/{{ trimAll "/" . }}{{ end }}
{{- end -}}
{{- end }}

{{/* The S3 endpoint, empty for AWS itself. */}}
{{- define "hubkit.s3Endpoint" -}}
{{- if eq .Values.storage.type "inCluster" -}}
http://{{ include "hubkit.fullname" . }}-s3.{{ .Release.Namespace }}.svc:9000
{{- else -}}
{{ .Values.storage.s3.endpoint }}
{{- end -}}
{{- end }}

{{/* Whether pods get keys from the Secret <prefix>-storage-credentials. */}}
{{- define "hubkit.usesCredentialSecret" -}}
{{- if or (eq .Values.storage.type "inCluster") (eq .Values.storage.s3.credentials "secret") -}}
true
{{- end -}}
{{- end }}

{{/*
Checks that keep the parts consistent; rendered (as nothing) from the config map, so a bad
combination fails `helm install` / `helm template` with a message saying what to change.
*/}}
{{- define "hubkit.validate" -}}
{{- $user := .Values.jupyterhub.singleuser.image -}}
{{- $worker := (index .Values "dask-gateway").gateway.backend.image -}}
{{- $mine := printf "%s:%s" .Values.image.name (toString .Values.image.tag) -}}
{{- if ne (printf "%s:%s" $user.name (toString $user.tag)) $mine -}}
{{- fail (printf "jupyterhub.singleuser.image is %s:%s but image is %s: user servers and Dask workers must run the same image" $user.name (toString $user.tag) $mine) -}}
{{- end -}}
{{- if ne (printf "%s:%s" $worker.name (toString $worker.tag)) $mine -}}
{{- fail (printf "dask-gateway.gateway.backend.image is %s:%s but image is %s: user servers and Dask workers must run the same image" $worker.name (toString $worker.tag) $mine) -}}
{{- end -}}
{{- $auth := toString (dig "hub" "config" "JupyterHub" "authenticator_class" "" .Values.jupyterhub) -}}
{{- if and (or (eq $auth "dummy") (contains "DummyAuthenticator" $auth)) (not .Values.dev.allowDummyAuthenticator) -}}
{{- fail "jupyterhub.hub.config.JupyterHub.authenticator_class is the DummyAuthenticator (any password logs in); set dev.allowDummyAuthenticator=true only for a private development hub" -}}
{{- end -}}
{{- $svc := (index .Values "dask-gateway").traefik.service.type -}}
{{- if ne $svc "ClusterIP" -}}
{{- fail (printf "dask-gateway.traefik.service.type is %s: the gateway must be reachable only through the hub proxy (ClusterIP)" $svc) -}}
{{- end -}}
{{- if and (eq .Values.storage.type "s3") (not .Values.storage.s3.bucket) -}}
{{- fail "storage.s3.bucket is empty: name the bucket hubkit stores products in" -}}
{{- end -}}
{{- /* names: hubkit's, and those the hub and the gateway derive at run time */ -}}
{{- $longest := printf "%s-storage-credentials" (include "hubkit.fullname" .) -}}
{{- if gt (len $longest) 63 -}}
{{- fail (printf "release name %q is too long: hubkit's object names (e.g. %s) must stay within 63 characters" .Release.Name $longest) -}}
{{- end -}}
{{- $gw := index .Values "dask-gateway" -}}
{{- if or $gw.fullnameOverride $gw.nameOverride (contains "dask-gateway" .Release.Name) -}}
{{- fail "the gateway's objects must be named <release>-dask-gateway (hubkit's gateway configuration derives the release from that name): unset dask-gateway.fullnameOverride/nameOverride, and pick a release name without \"dask-gateway\"" -}}
{{- end -}}
{{- $hubSecret := include "jupyterhub.hub.fullname" . -}}
{{- $auth := $gw.gateway.auth.jupyterhub -}}
{{- if ne $auth.apiTokenFromSecretName $hubSecret -}}
{{- fail (printf "dask-gateway.gateway.auth.jupyterhub.apiTokenFromSecretName is %q, but the hub's Secret is %q: set it to %q" $auth.apiTokenFromSecretName $hubSecret $hubSecret) -}}
{{- end -}}
{{- $apiUrl := printf "http://%s:8081/hub/api" $hubSecret -}}
{{- if and (ne $hubSecret "hub") (ne (toString $auth.apiUrl) $apiUrl) -}}
{{- fail (printf "jupyterhub.fullnameOverride renames the hub to %q: set dask-gateway.gateway.auth.jupyterhub.apiUrl to %q (else the gateway asks the hub named \"hub\" of this namespace)" $hubSecret $apiUrl) -}}
{{- end -}}
{{- end }}

{{/* Egress rules shared by hubkit's policies: DNS, the in-cluster store, the internet. */}}
{{- define "hubkit.commonEgress" -}}
- ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- if eq .Values.storage.type "inCluster" }}
- to:
    - podSelector:
        matchLabels:
          {{- include "hubkit.selectorLabels" (dict "root" . "component" "objectstore") | nindent 10 }}
  ports:
    - {port: 9000, protocol: TCP}
{{- end }}
- to:
    - ipBlock:
        cidr: 0.0.0.0/0
        except:
          - 10.0.0.0/8
          - 172.16.0.0/12
          - 192.168.0.0/16
          {{- if .Values.networkPolicy.blockCloudMetadata }}
          - {{ .Values.networkPolicy.cloudMetadataCIDR }}
          {{- end }}
{{- end }}

{{/*
The gateway chart's name prefix, computed as that chart does (dask-gateway.fullname): its
fullnameOverride, else the release name if it contains the chart's name, else <release>-<name>.
*/}}
{{- define "hubkit.gatewayFullname" -}}
{{- $gw := index .Values "dask-gateway" -}}
{{- if $gw.fullnameOverride -}}
{{- $gw.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "dask-gateway" $gw.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end }}

{{/* The gateway's traefik Service (its API under gateway.prefix, schedulers on the tcp port). */}}
{{- define "hubkit.gatewayTraefik" -}}
{{- include "hubkit.gatewayFullname" . | printf "traefik-%s" | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/*
DASK_GATEWAY__ADDRESS for clients inside the cluster (notebooks, Dask pods): the gateway's own
traefik Service, the same in every mode. Not proxy-public: with HTTPS by autohttps it answers
plain http with a redirect to https://proxy-public/..., whose certificate is for the hub's DNS
name; behind an ingress it is the proxy itself. Browsers reach the gateway through the hub
(DASK_GATEWAY__PUBLIC_ADDRESS).
*/}}
{{- define "hubkit.gatewayAddress" -}}
{{- $gw := index .Values "dask-gateway" -}}
http://{{ include "hubkit.gatewayTraefik" . }}.{{ .Release.Namespace }}.svc:{{ $gw.traefik.service.ports.web.port }}{{ $gw.gateway.prefix | trimSuffix "/" }}
{{- end }}

{{/* DASK_GATEWAY__PROXY_ADDRESS: scheduler connections (TLS) through traefik's tcp port. */}}
{{- define "hubkit.gatewayProxyAddress" -}}
{{- $svc := (index .Values "dask-gateway").traefik.service.ports -}}
{{- $port := ternary $svc.web.port $svc.tcp.port (eq (toString $svc.tcp.port) "web") -}}
gateway://{{ include "hubkit.gatewayTraefik" . }}.{{ .Release.Namespace }}.svc:{{ $port }}
{{- end }}

{{/* DASK_GATEWAY__PUBLIC_ADDRESS: dashboards in the browser, through the hub's proxy. */}}
{{- define "hubkit.gatewayPublicAddress" -}}
{{- $base := .Values.jupyterhub.hub.baseUrl | default "/" | trimSuffix "/" -}}
{{ $base }}{{ (index .Values "dask-gateway").gateway.prefix | trimSuffix "/" }}/
{{- end }}
