"""The ``kubectl scaivault`` command line: arguments, the one event loop, printing, exit codes.

    kubectl scaivault status   [-n NS | -A]                                      [-o table|json|yaml]
    kubectl scaivault why      NS/NAME                                           [-o ...]
    kubectl scaivault versions PATH --connection KIND/NAME|NAME [-n NS | -A]     [-o ...]
    kubectl scaivault refresh  NS/NAME                                           [-o ...]
    kubectl scaivault render   NS/NAME [--show-values]                           [-o ...]

Every command also takes ``--kubeconfig FILE``, ``--context NAME`` and ``--request-timeout SECONDS``; ``NAME -n NS``
works wherever ``NS/NAME`` does, and a bare ``NAME`` is in the kubeconfig context's namespace. The report goes to
stdout; errors and notes to stderr (in ``-o json|yaml`` the notes are the report's ``notes``). Exit codes:
``output.ExitCode``.

``main`` is the console script ``kubectl-scaivault`` (``[project.scripts]``); tests call it with their own streams.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import os
import re
import sys
import traceback
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from scaivault_operator._plugin.output import (
    FORMATS,
    ExitCode,
    Format,
    PluginError,
    Report,
    UsageError,
    format_report,
    marks_for,
)

__all__ = ["DEBUG_ENV", "PROG", "build_parser", "main", "parse_ref"]

PROG = "kubectl scaivault"
#: Set to print the traceback of an unexpected error (it may name internals; it never holds a token).
DEBUG_ENV = "KUBECTL_SCAIVAULT_DEBUG"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

#: stdout and stderr of the running ``main`` (tests pass their own; threads each have theirs).
_STREAMS: contextvars.ContextVar[tuple[TextIO, TextIO]] = contextvars.ContextVar("kubectl_scaivault_streams")


class _Parser(argparse.ArgumentParser):
    """argparse, printing to ``main``'s streams."""

    def _print_message(self, message: str, file: Any = None) -> None:
        if not message:
            return
        out, err = _STREAMS.get((sys.stdout, sys.stderr))
        (out if file is sys.stdout else err).write(message)


def parse_ref(value: str, namespace: str | None, default_namespace: str) -> tuple[str, str]:
    """``NS/NAME`` or ``NAME`` (in ``namespace``, else ``default_namespace``) → ``(namespace, name)``."""
    ns, slash, name = value.partition("/")
    if slash:
        if not ns or not name or "/" in name:
            raise UsageError(f"{value!r}: use NAMESPACE/NAME or NAME")
        if namespace is not None and namespace != ns:
            raise UsageError(f"{value!r} names namespace {ns}, but -n says {namespace}")
    else:
        ns, name = namespace or default_namespace, value
    if not _DNS_LABEL.fullmatch(ns) or len(ns) > 63:
        raise UsageError(f"{ns!r} is not a namespace name")
    if not _DNS_SUBDOMAIN.fullmatch(name) or len(name) > 253:
        raise UsageError(f"{name!r} is not an object name")
    return ns, name


def _timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds <= 3600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 3600 seconds")
    return seconds


def _common(suppress: bool) -> _Parser:
    """The flags every command takes; on the subcommands they default to nothing (so that ``--kubeconfig X status``
    and ``status --kubeconfig X`` both work)."""
    default = argparse.SUPPRESS if suppress else None
    common = _Parser(add_help=False)
    common.add_argument("--kubeconfig", metavar="FILE", default=default,
                        help="kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)")  # fmt: skip
    common.add_argument("--context", metavar="NAME", default=default, help="kubeconfig context to use")
    common.add_argument("--request-timeout", metavar="SECONDS", type=_timeout,
                        default=argparse.SUPPRESS if suppress else 10.0,
                        help="timeout of each request to the API server (default 10)")  # fmt: skip
    common.add_argument("-o", "--output", choices=FORMATS, default=argparse.SUPPRESS if suppress else "table",
                        help="output format (default: table)")  # fmt: skip
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Explain what the scaivault-operator did with your VaultSecrets, and why. Exit codes: 0 all "
        "Ready, 1 something not Ready or not found, 2 usage error, 3 the API server or ScaiVault cannot be "
        "reached, 4 forbidden.",
        parents=[_common(suppress=False)],
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [_common(suppress=True)]

    status = commands.add_parser("status", parents=common, help="VaultSecrets by Ready reason, and the connections")
    scope = status.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help="only this namespace (default: the context's)")
    scope.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")

    why = commands.add_parser("why", parents=common, help="why one VaultSecret is (not) Ready, step by step")
    why.add_argument("ref", metavar="NS/NAME", help="the VaultSecret (NAME: in -n NS or the context's namespace)")
    why.add_argument("-n", "--namespace", help="namespace of NAME")

    versions = commands.add_parser("versions", parents=common,
                                   help="the current version of a ScaiVault path, and who holds which")  # fmt: skip
    versions.add_argument("path", metavar="PATH", help="ScaiVault path, e.g. environments/production/payments/api")
    versions.add_argument("--connection", required=True, metavar="KIND/NAME|NAME",
                          help="the connection to ask through: NAME (a ClusterVaultConnection) or "
                          "ClusterVaultConnection/NAME, VaultConnection/NAME (cvc/, vconn/)")  # fmt: skip
    users = versions.add_mutually_exclusive_group()
    users.add_argument("-n", "--namespace", help="namespace of a VaultConnection; only this namespace's VaultSecrets")
    users.add_argument("-A", "--all-namespaces", action="store_true",
                       help="VaultSecrets of every namespace (the default for a ClusterVaultConnection)")  # fmt: skip

    refresh = commands.add_parser("refresh", parents=common, help="ask the operator to re-read a VaultSecret's source")
    refresh.add_argument("ref", metavar="NS/NAME", help="the VaultSecret")
    refresh.add_argument("-n", "--namespace", help="namespace of NAME")

    render = commands.add_parser("render", parents=common,
                                 help="the Secret the operator would write now: keys, sizes, hashes")  # fmt: skip
    render.add_argument("ref", metavar="NS/NAME", help="the VaultSecret")
    render.add_argument("-n", "--namespace", help="namespace of NAME")
    render.add_argument("--show-values", action="store_true",
                        help="also print the values — only if you may read the target Secret yourself")  # fmt: skip
    return parser


async def _run(args: argparse.Namespace, environ: Mapping[str, str], marks_encoding: str | None) -> Report:
    from scaivault_operator._plugin.cluster import Cluster
    from scaivault_operator._plugin.render import refresh, render
    from scaivault_operator._plugin.source import parse_connection_arg
    from scaivault_operator._plugin.status import status
    from scaivault_operator._plugin.versions import versions
    from scaivault_operator._plugin.why import why

    connection = parse_connection_arg(args.connection) if args.command == "versions" else None
    cluster = Cluster.open(args.kubeconfig, context=args.context, timeout=args.request_timeout, environ=environ)
    async with cluster:
        if args.command == "status":
            return await status(cluster, None if args.all_namespaces else args.namespace or cluster.namespace)
        if args.command == "versions":
            assert connection is not None
            return await versions(cluster, args.path, connection, args.namespace, args.all_namespaces)
        namespace, name = parse_ref(args.ref, args.namespace, cluster.namespace)
        if args.command == "why":
            return await why(cluster, namespace, name, marks_for(marks_encoding or "utf-8"))
        if args.command == "refresh":
            return await refresh(cluster, namespace, name)
        return await render(cluster, namespace, name, show_values=args.show_values)


def _fail(err: TextIO, message: str, code: ExitCode) -> int:
    err.write(f"error: {message}\n")
    return int(code)


def main(
    argv: Sequence[str] | None = None,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run ``kubectl scaivault`` with ``argv`` (default: the process's); the exit code."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    env = os.environ if environ is None else environ
    for stream in (out, err):
        if stream in (sys.stdout, sys.stderr) and hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")  # a terminal that cannot print ✓ or … gets ? instead
    token = _STREAMS.set((out, err))
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help (0) or a usage error (2), already printed
            return exc.code if isinstance(exc.code, int) else int(ExitCode.USAGE)
        fmt: Format = args.output
        try:
            report = asyncio.run(_run(args, env, getattr(out, "encoding", None)))
        except UsageError as exc:
            return _fail(err, f"{PROG} {args.command}: {exc.message}", exc.code)
        except PluginError as exc:
            return _fail(err, exc.message, exc.code)
        except KeyboardInterrupt:
            return 130
        except Exception as exc:  # a bug: say what, without echoing anything that might hold data
            if env.get(DEBUG_ENV):
                traceback.print_exc(file=err)
            return _fail(err, f"unexpected {type(exc).__name__} (set {DEBUG_ENV}=1 for the traceback)",
                         ExitCode.NOT_READY)  # fmt: skip
        out.write(format_report(report, fmt))
        if fmt == "table":
            for note in report.notes:
                err.write(f"note: {note}\n")
        out.flush()
        return int(report.code)
    finally:
        _STREAMS.reset(token)
