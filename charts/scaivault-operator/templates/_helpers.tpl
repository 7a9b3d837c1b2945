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

{{/* Labels of the CRDs (templates/crds.yaml), added to the ones their files carry (app.kubernetes.io/name). */}}
{{- define "scaivault-operator.crdLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
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

{{/* Shards (docs/sharding.md) ------------------------------------------------------------------------- */}}

{{/* "true" when the VaultSecrets are split over several Deployments (shards > 1), "" for one Deployment. */}}
{{- define "scaivault-operator.sharded" -}}
{{- if gt (int .Values.shards) 1 -}}true{{- end -}}
{{- end -}}

{{/*
A per-shard name, called with (list $ <base name> <shard index>): the base name itself with one shard (what the chart
has always rendered: an upgrade changes no name), else "<base>-shard-<i>", the base shortened so that the suffix
always fits in 63 characters (names of different shards never collide).
*/}}
{{- define "scaivault-operator.shardName" -}}
{{- $root := index . 0 -}}
{{- $base := index . 1 -}}
{{- if include "scaivault-operator.sharded" $root -}}
{{- $suffix := printf "-shard-%d" (int (index . 2)) -}}
{{- printf "%s%s" ($base | trunc (int (sub 63 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- else -}}
{{- $base -}}
{{- end -}}
{{- end -}}

{{/* The Deployment (and PodDisruptionBudget) of shard (list $ <index>). */}}
{{- define "scaivault-operator.shardFullname" -}}
{{- include "scaivault-operator.shardName" (list (index . 0) (include "scaivault-operator.fullname" (index . 0)) (index . 1)) -}}
{{- end -}}

{{/* The Kopf peering object of shard (list $ <index>): each shard has its own, so that one active replica per shard
works (one peering shared by every shard would let a single pod of them all work). */}}
{{- define "scaivault-operator.shardPeeringName" -}}
{{- include "scaivault-operator.shardName" (list (index . 0) (include "scaivault-operator.peeringName" (index . 0)) (index . 1)) -}}
{{- end -}}

{{/* The peering objects of every shard, as a JSON list (RBAC: patch on these names only). */}}
{{- define "scaivault-operator.peeringNames" -}}
{{- $root := . -}}
{{- $names := list -}}
{{- range $i := until (int .Values.shards) -}}
{{- $names = append $names (include "scaivault-operator.shardPeeringName" (list $root $i)) -}}
{{- end -}}
{{- $names | toJson -}}
{{- end -}}

{{/* Selector labels of shard (list $ <index>): the release's, plus the shard index when there are several shards,
so that no two Deployments select each other's pods. The Service, ServiceMonitor and NetworkPolicy select all shards
(selectorLabels). */}}
{{- define "scaivault-operator.shardSelectorLabels" -}}
{{- $root := index . 0 -}}
{{ include "scaivault-operator.selectorLabels" $root }}
{{- if include "scaivault-operator.sharded" $root }}
scaivault.scailabs.ai/shard: {{ index . 1 | quote }}
{{- end -}}
{{- end -}}

{{/* Namespaces that get a Role with the namespaced rules: the watched ones (namespaced mode only). */}}
{{- define "scaivault-operator.roleNamespaces" -}}
{{- uniq .Values.watchNamespaces | toJson -}}
{{- end -}}

{{/*
Fails when the CRD named (list $ "<name>") is not rendered by this upgrade but Helm would delete it: it belongs to
this release (ownership annotations) and lacks helm.sh/resource-policy: keep. Deleting a CRD deletes every object
of its kind — for VaultSecrets, also the Secrets they own.
*/}}
{{- define "scaivault-operator.refuseCrdDeletion" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $live := lookup "apiextensions.k8s.io/v1" "CustomResourceDefinition" "" $name -}}
{{- $annotations := dig "metadata" "annotations" dict $live -}}
{{- if and (eq (get $annotations "meta.helm.sh/release-name") $root.Release.Name) (eq (get $annotations "meta.helm.sh/release-namespace") $root.Release.Namespace) (ne (get $annotations "helm.sh/resource-policy") "keep") -}}
{{- fail (printf "crds: this release installed the CRD %s without helm.sh/resource-policy: keep, and these values no longer render it, so Helm would delete it and with it every object of its kind (for VaultSecrets: the Secrets they own too). Keep it: first upgrade with crds.keep=true and the previous values, or run: kubectl annotate crd %s helm.sh/resource-policy=keep. To delete it on purpose: kubectl delete crd %s" $name $name $name) -}}
{{- end -}}
{{- end -}}

{{/* Custom resources of our own CRDs ------------------------------------------------------------------ */}}

{{/*
Annotations for a custom resource (the ClusterVaultConnection "default", the Kopf peering objects), called with
(list $ "group/version/Kind" <whether this release installs its CRD>). Helm maps every object of a release to an
API before it creates any, so on a cluster that does not serve the kind yet (a first install with crds.install) the
object cannot be an ordinary part of the release: it becomes a post-install/post-upgrade hook, which Helm builds
after the CRDs exist. It carries the release's ownership annotations, so that the next `helm upgrade` (the kind now
served) takes it over as an ordinary object. Otherwise (the kind is served, or the CRD is managed outside the
release) nothing is added. `helm template` knows only the built-in kinds unless given --api-versions.
*/}}
{{- define "scaivault-operator.customResourceAnnotations" -}}
{{- $root := index . 0 -}}
{{- if and (index . 2) (not ($root.Capabilities.APIVersions.Has (index . 1))) -}}
helm.sh/hook: post-install,post-upgrade
helm.sh/hook-delete-policy: before-hook-creation
meta.helm.sh/release-name: {{ $root.Release.Name }}
meta.helm.sh/release-namespace: {{ $root.Release.Namespace }}
{{- end -}}
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

{{/*
Names of the Secrets in the release namespace that the operator may read as connection credentials in namespaced
mode (a JSON list): the default connection's (when scaivault.url is set) and rbac.credentialSecrets.
*/}}
{{- define "scaivault-operator.credentialSecretNames" -}}
{{- $names := .Values.rbac.credentialSecrets | default list -}}
{{- if .Values.scaivault.url -}}
{{- if eq (include "scaivault-operator.authMethod" .) "token" -}}
{{- $names = append $names (include "scaivault-operator.tokenSecretName" .) -}}
{{- else -}}
{{- $names = append $names (include "scaivault-operator.clientSecretName" .) -}}
{{- end -}}
{{- end -}}
{{- uniq $names | toJson -}}
{{- end -}}

{{- define "scaivault-operator.clientSecretName" -}}
{{- default (printf "%s-client" (include "scaivault-operator.fullname" .)) .Values.scaivault.auth.clientCredentials.existingSecret -}}
{{- end -}}

{{/* RBAC rule sets (templates/rbac.yaml) --------------------------------------------------------------- */}}

{{- define "scaivault-operator.namespacedRules" -}}
# Kopf watches VaultSecrets (list + watch); the operator checks that one still exists before re-creating its
# deleted Secret (get) and lists them after a watch was re-listed, to forget those deleted meanwhile (list). It adds
# and removes its finalizer scaivault.scailabs.ai/retain-secret on those with deletionPolicy: Retain (get + patch).
- apiGroups: [scaivault.scailabs.ai]
  resources: [vaultsecrets]
  verbs: [get, list, patch, watch]
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
# status.breaker, written when a connection's circuit breaker opens or closes (merge patch of the status subresource).
- apiGroups: [scaivault.scailabs.ai]
  resources: [vaultconnections/status]
  verbs: [patch]
# Secrets: get (the live target before a write; connection tokens and client credentials), create, patch,
# delete (a type change recreates; a renamed target deletes the old Secret), list (the managed ones at start-up,
# label-selected) and watch (Kopf, server-side label selector app.kubernetes.io/managed-by=scaivault-operator).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
# Events: the operator's on VaultSecrets (and, with rollout.enabled, on the workloads it restarts); Kopf's own
# (warnings only).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- if .Values.rollout.enabled }}
# Workload rollouts (rollout.enabled): when a sync changed a Secret's data, the operator lists the namespace's
# Deployments, StatefulSets and DaemonSets once per debounce window (list), restarts those whose used keys changed
# with a merge patch of their pod template's annotation scaivault.scailabs.ai/rollout (patch), and re-reads one whose
# patch met a 409 (get). No watch, no update, no delete; nothing on Pods or ReplicaSets.
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, list, patch]
{{- end }}
{{- end -}}
{{- define "scaivault-operator.peeringRules" -}}
# Kopf peering (replicaCount > 1): watch the peering objects, patch our own (one per shard) with keep-alives.
- apiGroups: [kopf.dev]
  resources: [{{ .resource }}]
  verbs: [list, watch]
- apiGroups: [kopf.dev]
  resources: [{{ .resource }}]
  resourceNames: {{ .names | toJson }}
  verbs: [patch]
{{- end -}}
