#!/usr/bin/env bash
# `make e2e`: the install path users take, end to end, on a throw-away kind cluster.
#
#   1. create the kind cluster $KIND_CLUSTER (node image $KIND_NODE_IMAGE, default: kind's own default);
#   2. build the operator image $IMAGE (Dockerfile) and load it into the cluster;
#   3. serve a local ScaiVault (`scaivault-operator dev-vault`) on the host, on the kind network's gateway
#      address, which pods reach (override with SVO_E2E_VAULT_HOST / SVO_E2E_VAULT_BIND, e.g. on Docker Desktop);
#   4. `helm install` charts/scaivault-operator with the ClusterVaultConnection "default" pointing at it;
#   5. smoke test: one VaultSecret becomes a Secret and follows version 2;
#   6. run tests/e2e against the cluster with SVO_E2E_OPERATOR=installed (the installed operator does the work;
#      the tests start no operator of their own) and SVO_E2E_REQUIRE_CLUSTER=1;
#   7. check the operator never restarted; tear everything down (KEEP_CLUSTER=1 keeps the cluster).
#
#   scripts/e2e-kind.sh [--preflight]     --preflight: only check that Docker and kind are there
#
# Needs docker (a running engine) and kind on PATH; helm, kubectl and python come from .venv/bin (make install).
# Without Docker it stops at once with exit status 2 and says what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${KIND_CLUSTER:-scaivault-e2e}
IMAGE=${IMAGE:-scaivault-operator:e2e}
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-}
NAMESPACE=scaivault-system
RELEASE=scaivault-operator
VAULT_PORT=${SVO_E2E_VAULT_PORT:-8200}
SMOKE_NS=svo-smoke
ADMIN_TOKEN=e2e-admin    # read + write: the script and the tests write secrets with it
READER_TOKEN=e2e-reader  # read only: the operator's token (the chart stores it in a Secret)

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'e2e: error: %s\n' "$*" >&2; exit 1; }

preflight() {
    local problems=()
    if ! command -v docker >/dev/null 2>&1; then
        problems+=("docker is not installed")
    elif ! docker info >/dev/null 2>&1; then
        problems+=("no Docker engine answers ('docker info' failed)")
    fi
    command -v kind >/dev/null 2>&1 || problems+=("kind is not installed (https://kind.sigs.k8s.io)")
    if ((${#problems[@]})); then
        {
            echo "make e2e: cannot run here:"
            printf '  - %s\n' "${problems[@]}"
            cat <<'EOF'
  make e2e creates a kind cluster, which needs a Docker engine and the kind binary. Nothing was started.
  Without them: 'make test' runs everything else (the chart is linted, rendered and validated offline), and
  'make e2e-cluster' runs tests/e2e against any cluster in KUBECONFIG with the operator in-process.
  CI runs make e2e on kind: .github/workflows/e2e.yml.
EOF
        } >&2
        exit 2
    fi
}

preflight
[[ ${1:-} == --preflight ]] && exit 0
[[ $IMAGE == *:* ]] || die "IMAGE must be name:tag, got '$IMAGE'"
for tool in helm kubectl python; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not on PATH: run make install (it puts helm and kubectl in .venv/bin)"
done

WORK=$(mktemp -d -t svo-e2e.XXXXXX)
export KUBECONFIG=$WORK/kubeconfig
CREATED_CLUSTER=
VAULT_PID=
OK=

diagnostics() {
    log "diagnostics"
    kubectl get pods,deployments -A -o wide || true
    kubectl -n "$NAMESPACE" describe pods -l app.kubernetes.io/name=scaivault-operator | tail -n 60 || true
    kubectl -n "$NAMESPACE" logs deployment/$RELEASE --all-containers --tail=300 || true
    kubectl get vaultsecrets -A -o wide || true
    kubectl get events -A --sort-by=.lastTimestamp | tail -n 40 || true
    if [[ -f $WORK/dev-vault.log ]]; then tail -n 50 "$WORK/dev-vault.log"; fi
}

cleanup() {
    local status=$?
    set +e
    if ((status != 0)) || [[ -z $OK ]]; then diagnostics; fi
    [[ -n $VAULT_PID ]] && kill "$VAULT_PID" 2>/dev/null && wait "$VAULT_PID" 2>/dev/null
    if [[ -n $CREATED_CLUSTER && -z ${KEEP_CLUSTER:-} ]]; then
        log "deleting kind cluster $CLUSTER"
        kind delete cluster --name "$CLUSTER"
    elif [[ -n ${KEEP_CLUSTER:-} ]]; then
        log "kept kind cluster $CLUSTER (kind export kubeconfig --name $CLUSTER; kind delete cluster --name $CLUSTER)"
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT

# -- 1. cluster -------------------------------------------------------------------------------------------------
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "reusing kind cluster $CLUSTER"
    kind export kubeconfig --name "$CLUSTER" --kubeconfig "$KUBECONFIG"
else
    log "creating kind cluster $CLUSTER ${KIND_NODE_IMAGE:+($KIND_NODE_IMAGE)}"
    CREATED_CLUSTER=1
    kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 180s ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
fi
kubectl version

# -- 2. image ---------------------------------------------------------------------------------------------------
log "building $IMAGE"
docker build --tag "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

# -- 3. local ScaiVault, reachable from pods --------------------------------------------------------------------
GATEWAY=$(docker network inspect kind --format '{{range .IPAM.Config}}{{.Gateway}} {{end}}' |
          tr ' ' '\n' | grep -m1 '\.' || true)
VAULT_HOST=${SVO_E2E_VAULT_HOST:-$GATEWAY}
VAULT_BIND=${SVO_E2E_VAULT_BIND:-$VAULT_HOST}
[[ -n $VAULT_HOST ]] || die "cannot find the kind network's IPv4 gateway; set SVO_E2E_VAULT_HOST"
VAULT_URL=http://$VAULT_HOST:$VAULT_PORT  # plain HTTP, not loopback: the connection needs insecureHTTP: true
log "dev-vault on $VAULT_BIND:$VAULT_PORT, reached from pods as $VAULT_URL"
scaivault-operator dev-vault --host "$VAULT_BIND" --port "$VAULT_PORT" \
    --token "$ADMIN_TOKEN=secrets:read,secrets:write" --token "$READER_TOKEN=secrets:read" \
    >"$WORK/dev-vault.log" 2>&1 &
VAULT_PID=$!

vault() {  # vault METHOD PATH [JSON]: one call to the dev vault as the admin token; prints the body
    python - "$VAULT_URL" "$ADMIN_TOKEN" "$@" <<'PY'
import sys, httpx
url, token, method, path, *body = sys.argv[1:]
resp = httpx.request(method, url + path, headers={"Authorization": f"Bearer {token}"},
                     content=body[0] if body else None, timeout=10)
print(resp.text)
sys.exit(0 if resp.is_success else 1)
PY
}
for _ in $(seq 50); do vault GET /v1/auth/whoami >/dev/null 2>&1 && break; sleep 0.2; done
vault GET /v1/auth/whoami >/dev/null || die "dev-vault does not answer on $VAULT_URL"

# -- 4. helm install --------------------------------------------------------------------------------------------
log "helm install $RELEASE"
helm install "$RELEASE" charts/scaivault-operator --namespace "$NAMESPACE" --create-namespace \
    --set image.repository="${IMAGE%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
    --set operator.logFormat=plain \
    --set scaivault.url="$VAULT_URL" --set scaivault.auth.token.value="$READER_TOKEN" \
    --set scaivault.insecureHTTP=true \
    --set scaivault.pollInterval=1s \
    --set "scaivault.access[0].namespaces[0]=$SMOKE_NS" --set "scaivault.access[0].pathPrefixes[0]=e2e/smoke/" \
    --wait --timeout 180s
kubectl -n "$NAMESPACE" rollout status deployment/$RELEASE --timeout=120s

# -- 5. smoke test: helm install + one VaultSecret works --------------------------------------------------------
log "smoke test: a VaultSecret becomes a Secret and follows version 2"
vault PUT /v1/secrets/e2e/smoke/config '{"data": {"greeting": "hello"}}' >/dev/null
kubectl create namespace "$SMOKE_NS"
kubectl apply -f - <<EOF
apiVersion: scaivault.scailabs.ai/v1alpha1
kind: VaultSecret
metadata: {name: config, namespace: $SMOKE_NS}
spec: {path: e2e/smoke/config}
EOF
secret_value() {
    kubectl -n "$SMOKE_NS" get secret config -o jsonpath='{.data.greeting}' 2>/dev/null | base64 -d 2>/dev/null || true
}
wait_for_value() {
    for _ in $(seq 120); do [[ $(secret_value) == "$1" ]] && return 0; sleep 0.5; done
    die "Secret $SMOKE_NS/config never held greeting=$1 (it holds '$(secret_value)')"
}
wait_for_value hello
kubectl -n "$SMOKE_NS" wait vaultsecret/config --for=condition=Ready --timeout=30s
vault PUT /v1/secrets/e2e/smoke/config '{"data": {"greeting": "hello again"}}' >/dev/null
wait_for_value "hello again"
kubectl get vaultsecrets -A
kubectl delete namespace "$SMOKE_NS" --wait=false

# -- 6. tests/e2e against the installed operator ----------------------------------------------------------------
log "tests/e2e (SVO_E2E_OPERATOR=installed)"
SVO_E2E_OPERATOR=installed SVO_E2E_REQUIRE_CLUSTER=1 \
SVO_E2E_VAULT_HOST=$VAULT_HOST SVO_E2E_VAULT_BIND=$VAULT_BIND \
SVO_E2E_OPERATOR_NAMESPACE=$NAMESPACE \
    python -m pytest -q tests/e2e

# -- 7. the operator survived all of it -------------------------------------------------------------------------
restarts=$(kubectl -n "$NAMESPACE" get pods -l app.kubernetes.io/name=scaivault-operator \
           -o jsonpath='{range .items[*]}{.status.containerStatuses[0].restartCount}{"\n"}{end}' | sort -n | tail -1)
[[ ${restarts:-0} == 0 ]] || die "the operator restarted $restarts time(s)"
helm uninstall "$RELEASE" --namespace "$NAMESPACE" --wait
OK=1
log "make e2e passed"
