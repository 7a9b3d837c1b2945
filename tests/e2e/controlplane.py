"""A private Kubernetes control plane for tests/e2e, run the way controller-runtime's envtest runs one.

Owned here:

- finding the binaries in ``$KUBEBUILDER_ASSETS`` (what ``setup-envtest use -p path`` prints): ``etcd`` and
  ``kube-apiserver`` are required, ``kube-controller-manager`` is used when present (garbage collection, namespace
  deletion, service-account tokens);
- the PKI, made with ``cryptography``: a CA, the serving certificate (127.0.0.1 and localhost), an admin client
  certificate in ``system:masters`` and the service-account signing key;
- free ports and a temporary directory (etcd's data, the certificates, one log file per component, the admin
  kubeconfig ``kubeconfig`` with everything embedded, ``owner.pid``); directories left by a killed owner are
  removed when the next control plane starts;
- starting etcd, then kube-apiserver, then kube-controller-manager, all bound to 127.0.0.1 and pointed only at
  each other, each awaited (etcd ``/health``, the API server's ``/readyz``, the controller-manager's ``/healthz``)
  within one start-up deadline;
- stopping them in reverse order (SIGTERM, SIGKILL after a deadline) and removing the directory — always, also when
  start-up or a test fails. On Linux each process also gets SIGKILL if the process that started it dies.

Every error message carries the last lines of each component's log. ``SVO_E2E_CONTROLPLANE_LOGS=DIR`` copies the
full logs there at teardown.

Used by ``conftest.py``'s session fixture ``cluster`` when ``$KUBEBUILDER_ASSETS`` is set and ``$KUBECONFIG`` is
not. By hand: ``python tests/e2e/controlplane.py check`` says whether the binaries are there (``make e2e-envtest``
runs it first); ``python tests/e2e/controlplane.py run`` starts a control plane, prints its kubeconfig and waits
for Ctrl-C.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import datetime
import ipaddress
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import yaml

if TYPE_CHECKING:  # imported when a PKI is made: without the dev extras the e2e tests still skip cleanly
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

ASSETS_ENV = "KUBEBUILDER_ASSETS"
LOGS_ENV = "SVO_E2E_CONTROLPLANE_LOGS"
ETCD = "etcd"
KUBE_APISERVER = "kube-apiserver"
KUBE_CONTROLLER_MANAGER = "kube-controller-manager"
HOST = "127.0.0.1"

HOW_TO_GET_BINARIES = (
    "go install sigs.k8s.io/controller-runtime/tools/setup-envtest@latest && "
    "export KUBEBUILDER_ASSETS=$(setup-envtest use -p path) "
    "(or any directory holding a kube-apiserver and an etcd; add a kube-controller-manager for garbage collection)"
)

#: Controllers the tests need: the garbage collector (a Secret goes with its VaultSecret), namespace deletion,
#: and the service-account ones so a namespace looks like one on a real cluster. Old names: newer releases
#: accept them as aliases.
#: (deployment, replicaset: a restarted Deployment shows its new ReplicaSet — tests/e2e/test_e2e_rollout.py.)
CONTROLLERS = ("garbagecollector", "namespace", "serviceaccount-token", "serviceaccount", "deployment", "replicaset")
#: Service IPs the API server allocates from (the ``kubernetes`` Service); nothing is ever sent there.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"

DIRECTORY_PREFIX = "svo-e2e-control-plane-"
#: In each control plane's directory: the process id of the process that started it.
OWNER_FILE = "owner.pid"

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 25


class ControlPlaneError(Exception):
    """The control plane could not be started (or the binaries are missing); the message says why."""


# -- binaries -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Binaries:
    """The executables of a control plane; ``kube_controller_manager`` None: no garbage collector."""

    directory: Path
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path | None

    @classmethod
    def find(cls, directory: str | os.PathLike[str]) -> Binaries:
        """The binaries in ``directory``; ``ControlPlaneError`` naming what is missing."""
        root = Path(directory).expanduser()

        def executable(name: str) -> Path | None:
            path = root / name
            return path if path.is_file() and os.access(path, os.X_OK) else None

        etcd, apiserver = executable(ETCD), executable(KUBE_APISERVER)
        missing = [name for name, path in ((ETCD, etcd), (KUBE_APISERVER, apiserver)) if path is None]
        if etcd is None or apiserver is None:
            raise ControlPlaneError(
                f"{ASSETS_ENV}={directory} has no executable {' and no '.join(missing)}; to get them: "
                + HOW_TO_GET_BINARIES
            )
        return cls(root, etcd, apiserver, executable(KUBE_CONTROLLER_MANAGER))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Binaries | None:
        """The binaries of ``$KUBEBUILDER_ASSETS``; None when it is unset, ``ControlPlaneError`` when incomplete."""
        directory = environ.get(ASSETS_ENV)
        return cls.find(directory) if directory else None

    def describe(self) -> str:
        names = [ETCD, KUBE_APISERVER] + ([KUBE_CONTROLLER_MANAGER] if self.kube_controller_manager else [])
        return f"{', '.join(names)} in {self.directory}"


# -- processes ------------------------------------------------------------------------------------------------


_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    """Linux: SIGKILL this child when the thread that started it ends (pytest killed), so nothing outlives it."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@dataclass
class Component:
    """One process of the control plane; its stdout and stderr go to ``log``."""

    name: str
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C goes to pytest, which stops us in order
                preexec_fn=_die_with_parent if _LIBC is not None else None,
            )

    @property
    def exit_code(self) -> int | None:
        """None while running (or never started); the exit code once it ended."""
        return None if self.process is None else self.process.poll()

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, within: float = STOP_TIMEOUT) -> None:
        """SIGTERM, then SIGKILL after ``within`` seconds; returns once the process is gone."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=within)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside the block, SIGTERM raises ``KeyboardInterrupt`` (as Ctrl-C does), so ``finally`` blocks and pytest's
    teardown still stop the processes and remove the directory. Only where SIGTERM has its default action and
    on the main thread; otherwise a no-op."""
    import threading

    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held together while chosen, so they differ)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


# -- PKI ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files, and the CA and admin credentials as PEM bytes (for the kubeconfig)."""

    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    admin_cert_pem: bytes
    admin_key_pem: bytes
    service_account_key: Path
    service_account_pub: Path

    @property
    def ca_pem(self) -> bytes:
        return self.ca_cert.read_bytes()


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def make_pki(directory: Path) -> Pki:
    """A CA, a serving certificate for 127.0.0.1/localhost, an admin client certificate (O=system:masters) and an
    RSA service-account key pair, written to ``directory`` (private keys 0600). Valid for a day."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=1)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("svo-e2e-control-plane-ca")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        subject: x509.Name, usage: x509.ObjectIdentifier, sans: Sequence[x509.GeneralName] = ()
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_encipherment=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    content_commitment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    serving_cert, serving_key = leaf(
        _name("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.IPAddress(ipaddress.ip_address(HOST)),
            *(
                x509.DNSName(name)
                for name in ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc")
            ),
        ],
    )
    admin_cert, admin_key = leaf(_name("svo-e2e-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def write(name: str, data: bytes, *, private: bool = False) -> Path:
        path = directory / name
        path.write_bytes(data)
        if private:
            path.chmod(0o600)
        return path

    return Pki(
        ca_cert=write("ca.crt", _cert_pem(ca_cert)),
        serving_cert=write("serving.crt", _cert_pem(serving_cert)),
        serving_key=write("serving.key", _key_pem(serving_key), private=True),
        admin_cert_pem=_cert_pem(admin_cert),
        admin_key_pem=_key_pem(admin_key),
        service_account_key=write("service-account.key", _key_pem(sa_key), private=True),
        service_account_pub=write(
            "service-account.pub",
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        ),
    )


def write_kubeconfig(path: Path, server: str, pki: Pki) -> None:
    """An admin kubeconfig with the CA and the client certificate embedded (kubectl and lightkube read it)."""
    name = "svo-e2e-control-plane"

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_pem)}}],
        "users": [
            {
                "name": "admin",
                "user": {
                    "client-certificate-data": b64(pki.admin_cert_pem),
                    "client-key-data": b64(pki.admin_key_pem),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": "admin"}}],
        "current-context": name,
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    path.chmod(0o600)


# -- the control plane -------------------------------------------------------------------------------------------


@dataclass
class ControlPlane:
    """A running private control plane: ``kubeconfig`` reaches its API server at ``url`` as cluster admin."""

    binaries: Binaries
    directory: Path
    url: str
    kubeconfig: Path
    components: list[Component] = field(default_factory=list)

    @property
    def garbage_collector(self) -> bool:
        """Whether a kube-controller-manager runs (garbage collection and namespace deletion)."""
        return any(c.name == KUBE_CONTROLLER_MANAGER for c in self.components)

    def logs(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` of each component's log, for an error message."""
        parts = []
        for component in self.components:
            state = "running" if component.exit_code is None else f"exited with {component.exit_code}"
            parts.append(
                f"--- {component.name} ({state}), last lines of {component.log.name}:\n{component.tail(lines)}"
            )
        return "\n".join(parts)

    def check_running(self) -> None:
        """``ControlPlaneError`` when a component has exited."""
        ended = [c for c in self.components if c.exit_code is not None]
        if ended:
            names = ", ".join(f"{c.name} (exit code {c.exit_code})" for c in ended)
            raise ControlPlaneError(f"{names} of the private control plane exited\n{self.logs()}")


def _tls_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    with tempfile.TemporaryDirectory(prefix="svo-e2e-admin-") as tmp:  # load_cert_chain reads files only
        cert, key = Path(tmp) / "admin.crt", Path(tmp) / "admin.key"
        cert.write_bytes(pki.admin_cert_pem)
        key.write_bytes(pki.admin_key_pem)
        key.chmod(0o600)
        context.load_cert_chain(cert, key)
    return context


def _wait_until_ready(
    plane: ControlPlane,
    component: Component,
    url: str,
    *,
    deadline: float,
    verify: ssl.SSLContext | bool,
    healthy: Callable[[httpx.Response], bool] = lambda response: response.status_code == 200,
) -> None:
    """Poll ``url`` until ``healthy``; ``ControlPlaneError`` (with every log's tail) when a component exits or
    ``deadline`` (``time.monotonic()``) passes."""
    last = "no answer yet"
    with httpx.Client(verify=verify, timeout=httpx.Timeout(2.0), trust_env=False) as http:
        while True:
            plane.check_running()
            try:
                response = http.get(url)
                if healthy(response):
                    return
                last = f"HTTP {response.status_code}: {response.text[-1500:]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() >= deadline:
                raise ControlPlaneError(
                    f"{component.name} was not ready at {url} within the start-up deadline; last answer: {last}\n"
                    + plane.logs()
                )
            time.sleep(0.2)


def _supports(binary: Path, flag: str) -> bool:
    """Whether ``binary --help`` mentions ``flag`` (flags differ between releases)."""
    try:
        result = subprocess.run(
            [str(binary), "--help"], capture_output=True, timeout=20, check=False, stdin=subprocess.DEVNULL
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag in (result.stdout + result.stderr).decode(errors="replace")


def etcd_args(binaries: Binaries, data_dir: Path, client_port: int, peer_port: int) -> list[str]:
    client, peer = f"http://{HOST}:{client_port}", f"http://{HOST}:{peer_port}"
    args = [
        str(binaries.etcd),
        "--name=svo-e2e",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=svo-e2e={peer}",
        "--initial-cluster-state=new",
    ]
    if _supports(binaries.etcd, "--unsafe-no-fsync"):  # etcd >= 3.5: a throw-away store needs no fsync
        args.append("--unsafe-no-fsync=true")
    return args


def apiserver_args(binaries: Binaries, directory: Path, pki: Pki, port: int, etcd_port: int) -> list[str]:
    return [
        str(binaries.kube_apiserver),
        f"--etcd-servers=http://{HOST}:{etcd_port}",
        f"--bind-address={HOST}",
        f"--advertise-address={HOST}",
        f"--secure-port={port}",
        f"--cert-dir={directory / 'apiserver-certs'}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        f"--client-ca-file={pki.ca_cert}",
        "--authorization-mode=RBAC",
        f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
        f"--service-account-issuer=https://{HOST}:{port}",
        f"--service-account-key-file={pki.service_account_pub}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        # The endpoints of Service "kubernetes" would be 127.0.0.1, which the API refuses (loopback): don't keep any.
        "--endpoint-reconciler-type=none",
        "--profiling=false",
    ]


def controller_manager_args(binary: Path, directory: Path, pki: Pki, port: int, kubeconfig: Path) -> list[str]:
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        f"--controllers={','.join(CONTROLLERS)}",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca_cert}",
        "--use-service-account-credentials=false",
        "--leader-elect=false",
        f"--bind-address={HOST}",
        f"--secure-port={port}",
        f"--cert-dir={directory / 'controller-manager-certs'}",
        f"--tls-cert-file={pki.serving_cert}",
        f"--tls-private-key-file={pki.serving_key}",
        "--profiling=false",
    ]


@contextlib.contextmanager
def private_control_plane(
    binaries: Binaries, *, start_timeout: float = START_TIMEOUT, stop_timeout: float = STOP_TIMEOUT
) -> Iterator[ControlPlane]:
    """Start etcd, kube-apiserver and (when present) kube-controller-manager on 127.0.0.1; yield once the API
    server is ready; stop everything and remove the directory on exit, whatever happened."""
    _remove_orphans()
    directory = Path(tempfile.mkdtemp(prefix=DIRECTORY_PREFIX))
    (directory / OWNER_FILE).write_text(str(os.getpid()), encoding="utf-8")
    plane: ControlPlane | None = None
    try:
        deadline = time.monotonic() + start_timeout
        pki = make_pki(directory)
        etcd_client, etcd_peer, api_port, kcm_port = _free_ports(4)
        url = f"https://{HOST}:{api_port}"
        plane = ControlPlane(binaries=binaries, directory=directory, url=url, kubeconfig=directory / "kubeconfig")
        write_kubeconfig(plane.kubeconfig, url, pki)

        data_dir = directory / "etcd"
        data_dir.mkdir(mode=0o700)
        etcd = Component(ETCD, etcd_args(binaries, data_dir, etcd_client, etcd_peer), directory / "etcd.log")
        plane.components.append(etcd)
        etcd.start()
        _wait_until_ready(
            plane,
            etcd,
            f"http://{HOST}:{etcd_client}/health",
            deadline=deadline,
            verify=False,  # plain HTTP on loopback, as envtest runs etcd
            healthy=lambda response: response.status_code == 200 and '"true"' in response.text,
        )

        tls = _tls_context(pki)
        apiserver = Component(
            KUBE_APISERVER, apiserver_args(binaries, directory, pki, api_port, etcd_client), directory / "apiserver.log"
        )
        plane.components.append(apiserver)
        apiserver.start()
        _wait_until_ready(plane, apiserver, f"{url}/readyz", deadline=deadline, verify=tls)

        if binaries.kube_controller_manager is not None:
            kcm = Component(
                KUBE_CONTROLLER_MANAGER,
                controller_manager_args(binaries.kube_controller_manager, directory, pki, kcm_port, plane.kubeconfig),
                directory / "controller-manager.log",
            )
            plane.components.append(kcm)
            kcm.start()
            _wait_until_ready(
                plane,
                kcm,
                f"https://{HOST}:{kcm_port}/healthz",
                deadline=deadline,
                verify=ssl.create_default_context(cafile=str(pki.ca_cert)),
            )
        yield plane
    finally:
        if plane is not None:
            for component in reversed(plane.components):
                component.stop(stop_timeout)
            _keep_logs(plane)
        shutil.rmtree(directory, ignore_errors=True)


def _remove_orphans() -> None:
    """Remove the directories of control planes whose owner died without cleaning up (killed with SIGKILL: its
    processes died with it, see ``_die_with_parent``). A directory whose owner still runs, or that names none, is
    left alone."""
    for directory in Path(tempfile.gettempdir()).glob(f"{DIRECTORY_PREFIX}*"):
        try:
            owner = int((directory / OWNER_FILE).read_text(encoding="utf-8"))
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(directory, ignore_errors=True)
        except (OSError, ValueError):
            continue


def _keep_logs(plane: ControlPlane) -> None:
    target = os.environ.get(LOGS_ENV)
    if not target:
        return
    destination = Path(target).expanduser()
    destination.mkdir(parents=True, exist_ok=True)
    for component in plane.components:
        with contextlib.suppress(OSError):
            shutil.copy(component.log, destination / component.log.name)


# -- command line ---------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help=f"say whether ${ASSETS_ENV} holds the binaries (exit 1 if not)")
    sub.add_parser("run", help="start a private control plane, print its kubeconfig, stop on Ctrl-C")
    args = parser.parse_args(argv)
    try:
        binaries = Binaries.from_environment()
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if binaries is None:
        print(f"error: {ASSETS_ENV} is not set; to get the binaries: {HOW_TO_GET_BINARIES}", file=sys.stderr)
        return 1
    if args.command == "check":
        print(f"{binaries.describe()}")
        if binaries.kube_controller_manager is None:
            print(f"no {KUBE_CONTROLLER_MANAGER}: the tests that need the garbage collector will skip", file=sys.stderr)
        return 0
    try:
        with sigterm_as_interrupt(), private_control_plane(binaries) as plane:
            print(f"export KUBECONFIG={plane.kubeconfig}   # {plane.url}; Ctrl-C stops it", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    plane.check_running()
                    time.sleep(1)
    except ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
