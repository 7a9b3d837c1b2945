{{/* Names ------------------------------------------------------------------------------------------------ */}}

{{- define "scaivault-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "scaivault-operator.fullname" -}}
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

{{- define "scaivault-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "scaivault-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "scaivault-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "scaivault-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "scaivault-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "scaivault-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: scaivault-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "scaivault-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Modes ------------------------------------------------------------------------------------------------ */}}

{{/* "true" when the operator serves only .Values.watchNamespaces (Roles), "" when it serves the whole cluster. */}}
{{- define "scaivault-operator.namespaced" -}}
{{- if .Values.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/* "true" when several replicas share the work through Kopf peering. */}}
{{- define "scaivault-operator.peering" -}}
{{- if gt (int .Values.replicaCount) 1 -}}true{{- end -}}
{{- end -}}

{{- define "scaivault-operator.peeringName" -}}
{{- default (include "scaivault-operator.fullname" .) .Values.peering.name -}}
{{- end -}}

{{/* Namespaces that get a Role with the namespaced rules: the watched ones (namespaced mode only). */}}
{{- define "scaivault-operator.roleNamespaces" -}}
{{- uniq .Values.watchNamespaces | toJson -}}
{{- end -}}

{{/* Default connection ----------------------------------------------------------------------------------- */}}

{{/* "token" or "clientCredentials" (or fails with a message saying what to set) when scaivault.url is set. */}}
{{- define "scaivault-operator.authMethod" -}}
{{- $auth := .Values.scaivault.auth -}}
{{- $token := or $auth.token.existingSecret $auth.token.value -}}
{{- $cc := $auth.clientCredentials -}}
{{- if and $token $cc.tokenUrl -}}
{{- fail "scaivault.auth: set either token (existingSecret or value) or clientCredentials (tokenUrl, ...), not both" -}}
{{- else if $cc.tokenUrl -}}
{{- if and $cc.existingSecret (or $cc.clientId $cc.clientSecret) -}}
{{- fail "scaivault.auth.clientCredentials: set either existingSecret or clientId and clientSecret, not both" -}}
{{- end -}}
{{- if not (or $cc.existingSecret (and $cc.clientId $cc.clientSecret)) -}}
{{- fail "scaivault.auth.clientCredentials: set existingSecret (a Secret in the release namespace with the client id and secret) or both clientId and clientSecret" -}}
{{- end -}}
clientCredentials
{{- else if $token -}}
{{- if and $auth.token.existingSecret $auth.token.value -}}
{{- fail "scaivault.auth.token: set either existingSecret or value, not both" -}}
{{- end -}}
token
{{- else -}}
{{- fail "scaivault.url is set but no credentials: set scaivault.auth.token.existingSecret (a Secret in the release namespace), scaivault.auth.token.value, or scaivault.auth.clientCredentials" -}}
{{- end -}}
{{- end -}}

{{- define "scaivault-operator.tokenSecretName" -}}
{{- default (printf "%s-token" (include "scaivault-operator.fullname" .)) .Values.scaivault.auth.token.existingSecret -}}
{{- end -}}

{{- define "scaivault-operator.clientSecretName" -}}
{{- default (printf "%s-client" (include "scaivault-operator.fullname" .)) .Values.scaivault.auth.clientCredentials.existingSecret -}}
{{- end -}}

{{/* RBAC rule sets (templates/rbac.yaml) --------------------------------------------------------------- */}}

{{- define "scaivault-operator.namespacedRules" -}}
# Kopf watches VaultSecrets (list + watch).
- apiGroups: [scaivault.scailabs.ai]
  resources: [vaultsecrets]
  verbs: [list, watch]
# The operator writes status.conditions, syncedVersion, ... (merge patch of the status subresource).
- apiGroups: [scaivault.scailabs.ai]
  resources: [vaultsecrets/status]
  verbs: [patch]
# The Secrets it writes are owned by their VaultSecret with blockOwnerDeletion: true, which the
# OwnerReferencesPermissionEnforcement admission plugin allows only with update on the owner's finalizers.
- apiGroups: [scaivault.scailabs.ai]
  resources: [vaultsecrets/finalizers]
  verbs: [update]
# VaultConnections: listed at start-up, then watched by Kopf.
- apiGroups: [scaivault.scailabs.ai]
  resources: [vaultconnections]
  verbs: [list, watch]
# Secrets: get (the live target before a write; connection tokens and client credentials), create, patch,
# delete (a type change recreates; a renamed target deletes the old Secret), list (the managed ones at start-up,
# label-selected) and watch (Kopf, server-side label selector app.kubernetes.io/managed-by=scaivault-operator).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
# Events: the operator's on VaultSecrets; Kopf's own (warnings only).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
{{- define "scaivault-operator.peeringRules" -}}
# Kopf peering (replicaCount > 1): watch the peering objects, patch our own with keep-alives.
- apiGroups: [kopf.dev]
  resources: [{{ .resource }}]
  verbs: [list, watch]
- apiGroups: [kopf.dev]
  resources: [{{ .resource }}]
  resourceNames: [{{ .name | quote }}]
  verbs: [patch]
{{- end -}}
