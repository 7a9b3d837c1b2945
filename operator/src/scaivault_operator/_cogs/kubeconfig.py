"""Where the Kubernetes API server is and how to log in to it — found the way client-go finds it, for both clients.

Owned here: choosing the configuration (``--kubeconfig``, then ``$KUBECONFIG``, then the in-cluster service
account, then ``~/.kube/config``: controller-runtime's order), merging a ``$KUBECONFIG`` list as kubectl does,
reading the in-cluster service account as client-go does, and handing the one result to both clients: lightkube
(``KubeAccess.config``, for the operator's own calls in ``kube``) and Kopf (``KubeAccess.connection_info``, for
its watches, called by the login handler in ``handlers``). So the two can never reach two different endpoints.

- ``$KUBECONFIG`` is a list (``a:b``): empty entries are ignored, missing files skipped, an unreadable or
  malformed file is an error; the first file to set a cluster, user or context name — or ``current-context`` —
  wins; relative paths are relative to the file that holds them.
- In a pod: the API server is ``https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT`` (never the
  ``kubernetes.default.svc`` DNS name), trusted with the mounted ``ca.crt``; the mounted token is re-read on every
  login (Kopf logs in again after a 401) and after a 401 (lightkube), so a token rotated by the kubelet is used.
- Tokens, keys and passwords are never put into an exception message or a log line; messages name files.

Called by ``runner.operate`` (one ``KubeAccess`` for ``kube.Kube.from_access`` and for Kopf's login handler in
``handlers``), ``cli run`` (to fail fast), ``testing.real_cluster`` (the demo), the benchmark and ``tests/e2e``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from lightkube import KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.config.models import Cluster, Context, User

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "KubeAccess",
    "KubeConfigError",
    "load",
    "merge_kubeconfigs",
]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_KUBECONFIG = Path("~/.kube/config")
_EXEC_TIMEOUT = 30.0
#: Path-valued fields of a kubeconfig, by section: resolved against the directory of the file that holds them.
_PATH_FIELDS = {
    "clusters": ("cluster", ("certificate-authority",)),
    "users": ("user", ("client-certificate", "client-key", "tokenFile")),
}


class KubeConfigError(Exception):
    """No usable Kubernetes configuration; the message says which files or variables were tried."""


# -- kubeconfig files ------------------------------------------------------------------------------------------


def _read_kubeconfig(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise KubeConfigError(f"cannot read kubeconfig {path}: {type(exc).__name__}") from None
    except yaml.YAMLError:
        raise KubeConfigError(f"kubeconfig {path} is not valid YAML") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise KubeConfigError(f"kubeconfig {path} is not a mapping")
    return document


def _resolve_paths(section: str, entry: Mapping[str, Any], base: Path) -> dict[str, Any]:
    """A copy of one named ``clusters``/``users`` entry with its relative file paths made absolute."""
    body_key, fields = _PATH_FIELDS[section]
    body = dict(entry.get(body_key) or {})
    for field in fields:
        value = body.get(field)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            body[field] = str(base / value)
        elif isinstance(value, str) and value:
            body[field] = str(Path(value).expanduser())
    exec_spec = body.get("exec")
    if isinstance(exec_spec, dict):
        command = exec_spec.get("command")
        # As client-go: a relative command with a path separator is relative to the file; a bare name is looked
        # up on PATH.
        if isinstance(command, str) and os.sep in command and not Path(command).is_absolute():
            body["exec"] = {**exec_spec, "command": str(base / command)}
    return {**entry, body_key: body}


def merge_kubeconfigs(paths: Sequence[Path]) -> dict[str, Any]:
    """Merge kubeconfig files as kubectl merges ``$KUBECONFIG``: the first file to set a name or a key wins.

    Missing files are skipped; ``KubeConfigError`` when none exists or one cannot be parsed.
    """
    merged: dict[str, Any] = {"clusters": [], "users": [], "contexts": []}
    seen: dict[str, set[str]] = {"clusters": set(), "users": set(), "contexts": set()}
    found = False
    for path in paths:
        if not path.is_file():
            continue
        found = True
        document = _read_kubeconfig(path)
        base = path.resolve().parent
        if not merged.get("current-context") and document.get("current-context"):
            merged["current-context"] = document["current-context"]
        for section in ("clusters", "users", "contexts"):
            for entry in document.get(section) or []:
                name = entry.get("name") if isinstance(entry, dict) else None
                if not isinstance(name, str) or name in seen[section]:
                    continue
                seen[section].add(name)
                merged[section].append(_resolve_paths(section, entry, base) if section in _PATH_FIELDS else entry)
    if not found:
        raise KubeConfigError(f"no kubeconfig file found (tried {os.pathsep.join(str(p) for p in paths)})")
    return merged


def _kubeconfig_paths(value: str) -> list[Path]:
    paths: list[Path] = []
    for entry in value.split(os.pathsep):
        path = Path(entry.strip()).expanduser() if entry.strip() else None
        if path is not None and path not in paths:
            paths.append(path)
    return paths


def _from_kubeconfig(paths: Sequence[Path], context: str | None, source: str) -> KubeAccess:
    merged = merge_kubeconfigs(paths)
    try:
        config = KubeConfig.from_dict(merged)
        single = config.get(context_name=context)
    except Exception as exc:  # lightkube raises ConfigError, KeyError or TypeError for incomplete entries
        raise KubeConfigError(f"{source}: unusable configuration ({type(exc).__name__}: {exc})") from None
    if single is None:
        raise KubeConfigError(f"{source}: no current-context is set and no context was given")
    return KubeAccess(config=single, source=f"{source}, context {single.context_name}")


# -- in-cluster ------------------------------------------------------------------------------------------------


def _in_cluster(environ: Mapping[str, str], service_account_dir: Path) -> KubeAccess | None:
    """The in-cluster configuration as client-go's ``rest.InClusterConfig`` builds it, or None outside a pod."""
    host, port = environ.get("KUBERNETES_SERVICE_HOST"), environ.get("KUBERNETES_SERVICE_PORT")
    token_file = service_account_dir / "token"
    if not host or not port or not token_file.is_file():
        return None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6
    ca_file = service_account_dir / "ca.crt"
    namespace_file = service_account_dir / "namespace"
    namespace = namespace_file.read_text(encoding="utf-8").strip() if namespace_file.is_file() else None
    single = SingleConfig(
        context_name="in-cluster",
        context=Context(cluster="in-cluster", user="in-cluster", namespace=namespace or None),
        cluster=Cluster(server=f"https://{host}:{port}", certificate_auth=str(ca_file) if ca_file.is_file() else None),
        user=User(token_file=str(token_file)),
    )
    return KubeAccess(config=single, source=f"in-cluster service account ({service_account_dir})")


# -- the result --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KubeAccess:
    """One API server and the credentials for it: ``config`` for lightkube, ``connection_info()`` for Kopf."""

    config: SingleConfig
    source: str  # where it came from: "in-cluster service account (...)" or "kubeconfig a:b, context x"

    @property
    def server(self) -> str:
        return str(self.config.cluster.server)

    async def connection_info(self, priority: int = 0) -> Any:
        """Kopf's ``ConnectionInfo`` for the same server and credentials, read afresh (a rotated token file, a
        new exec-plugin token). Kopf calls its login handlers again after a 401."""
        import kopf

        cluster, user = self.config.cluster, self.config.user or User()
        fields: dict[str, Any] = {
            "server": self.server,
            "insecure": cluster.insecure or None,
            "default_namespace": self.config.context.namespace,
            "priority": priority,
        }
        if cluster.certificate_auth:
            fields["ca_path"] = cluster.certificate_auth
        elif cluster.certificate_auth_data:
            fields["ca_data"] = cluster.certificate_auth_data
        if user.client_cert or user.client_cert_data:
            fields["certificate_path"] = user.client_cert
            fields["certificate_data"] = user.client_cert_data
            fields["private_key_path"] = user.client_key
            fields["private_key_data"] = user.client_key_data
        if user.token_file:
            fields["token"] = _read_token_file(Path(user.token_file))
        elif user.token:
            fields["token"] = user.token
        elif user.exec is not None:
            fields.update(await _exec_credential(user))
        elif user.username and user.password:
            fields["username"], fields["password"] = user.username, user.password
        elif user.auth_provider:
            raise KubeConfigError(
                f"{self.source}: auth-provider is not supported (removed from kubectl in 1.26): use an exec plugin"
            )
        return kopf.ConnectionInfo(**fields)


def _read_token_file(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise KubeConfigError(f"cannot read token file {path}: {type(exc).__name__}") from None
    if not token:
        raise KubeConfigError(f"token file {path} is empty")
    return token


async def _exec_credential(user: User) -> dict[str, Any]:
    """Run a kubeconfig exec credential plugin (client.authentication.k8s.io) and return Kopf's credential fields."""
    assert user.exec is not None
    spec = user.exec
    env = {**os.environ, **{item.name: item.value for item in spec.env or []}}
    env["KUBERNETES_EXEC_INFO"] = json.dumps(
        {"apiVersion": spec.apiVersion, "kind": "ExecCredential", "spec": {"interactive": False}}
    )
    try:
        process = await asyncio.create_subprocess_exec(
            spec.command, *(spec.args or []), env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        stdout, _ = await asyncio.wait_for(process.communicate(), _EXEC_TIMEOUT)
    except (OSError, TimeoutError) as exc:
        raise KubeConfigError(f"exec credential plugin {spec.command}: {type(exc).__name__}") from None
    if process.returncode != 0:
        raise KubeConfigError(f"exec credential plugin {spec.command} exited with {process.returncode}")
    try:
        status = json.loads(stdout)["status"]
    except (ValueError, KeyError, TypeError):
        raise KubeConfigError(f"exec credential plugin {spec.command} printed no ExecCredential status") from None
    fields: dict[str, Any] = {}
    if status.get("token"):
        fields["token"] = status["token"]
    if status.get("clientCertificateData"):
        fields["certificate_data"] = status["clientCertificateData"].encode()
        fields["private_key_data"] = status.get("clientKeyData", "").encode()
    if status.get("expirationTimestamp"):
        expires = datetime.fromisoformat(str(status["expirationTimestamp"]).replace("Z", "+00:00"))
        fields["expiration"] = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
    return fields


def load(
    kubeconfig: str | os.PathLike[str] | None = None,
    *,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
    default_kubeconfig: Path = DEFAULT_KUBECONFIG,
) -> KubeAccess:
    """The API server and credentials to use: ``kubeconfig`` (one file), else ``$KUBECONFIG`` (a list), else the
    in-cluster service account, else ``~/.kube/config``. ``KubeConfigError`` says what was tried."""
    env = os.environ if environ is None else environ
    if kubeconfig:
        path = Path(kubeconfig).expanduser()
        if not path.is_file():
            raise KubeConfigError(f"kubeconfig {path} does not exist")
        return _from_kubeconfig([path], context, f"kubeconfig {path}")
    if env.get("KUBECONFIG", "").strip(os.pathsep + " "):
        value = env["KUBECONFIG"]
        return _from_kubeconfig(_kubeconfig_paths(value), context, f"kubeconfig {value}")
    in_cluster = _in_cluster(env, service_account_dir)
    if in_cluster is not None:
        return in_cluster
    default = default_kubeconfig.expanduser()
    if default.is_file():
        return _from_kubeconfig([default], context, f"kubeconfig {default}")
    raise KubeConfigError(
        "no Kubernetes configuration: KUBECONFIG is not set, this is not a pod (KUBERNETES_SERVICE_HOST/PORT and "
        f"{service_account_dir}/token), and {default} does not exist"
    )
