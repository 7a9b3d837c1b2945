"""The ``scaivault-operator`` command line.

One ``_cmd_<name>`` function per subcommand, registered by one ``_add_<name>_parser`` function. Heavy imports
happen inside the command functions, so ``scaivault-operator version`` loads nothing but this module and the
version string. To add a subcommand: write both functions and call the second from ``build_parser``.

    scaivault-operator version
    scaivault-operator run [--namespace NS ...] [--kubeconfig FILE] [--workers N] [--liveness URL]
                           [--metrics-port P] [--peering NAME [--peering-priority N]] [--shard I/N]
                           [--selector LABELS] [--log-format F] [-v]
    scaivault-operator demo [--emulated]
    scaivault-operator dev-vault [--host H] [--port P] [--token TOKEN=SCOPES ...] [--client ID:SECRET=SCOPES ...]
                                 [--data FILE] [--token-ttl S] [--max-body BYTES] [fault flags]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scaivault_operator.devvault import DevVaultConfig

__all__ = ["build_parser", "main"]

Command = Callable[[argparse.Namespace], int]

EXIT_USAGE = 2
#: ``devvault.BODY_FAULTS``, spelled out so that building the parser imports nothing heavy (a unit test compares).
DEV_VAULT_BODY_FAULTS = ("reset", "truncate", "malformed", "huge", "content_type", "html")


class _UsageError(Exception):
    """A bad flag value found after argparse, reported like argparse's own errors (exit status 2)."""


def _cmd_version(args: argparse.Namespace) -> int:
    from scaivault_operator import __version__

    print(__version__)
    return 0


def _add_version_parser(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser("version", help="print the version and exit")
    parser.set_defaults(func=_cmd_version)


def _dev_vault_config(args: argparse.Namespace) -> DevVaultConfig:
    from scaivault_operator.devvault import DevVaultConfig, FaultConfig, parse_client_spec, parse_token_spec

    try:
        tokens = dict(parse_token_spec(spec) for spec in args.token)
        clients = {}
        for spec in args.client:
            client_id, secret, scopes = parse_client_spec(spec)
            clients[client_id] = (secret, scopes)
        faults = FaultConfig(
            latency=args.latency,
            error_rate=args.error_rate,
            rate_limit_rate=args.rate_limit_rate,
            retry_after=_retry_after(args.retry_after),
            expire_tokens=args.expire_tokens,
            seed=args.fault_seed,
            calls=[call.strip() for call in args.fault_calls.split(",")] if args.fault_calls is not None else None,
            body_fault=args.body_fault,
            list_version_lag=args.list_version_lag,
            expire_issued_after=args.expire_issued_after,
        )
        config = DevVaultConfig(
            host=args.host,
            port=args.port,
            tokens=tokens,
            clients=clients,
            token_ttl=args.token_ttl,
            data_file=args.data,
            max_body=args.max_body,
            faults=faults,
        )
        config.validate()
    except ValueError as exc:
        raise _UsageError(str(exc)) from None
    return config


def _retry_after(text: str) -> float | None:
    """``--retry-after``: seconds, or ``none`` for 429s without the header."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise ValueError("retry_after must be a number of seconds or 'none'") from None


async def _serve_dev_vault(config: DevVaultConfig) -> None:
    """Serve until SIGINT or SIGTERM."""
    import asyncio
    import logging
    import signal

    from scaivault_operator.devvault import DevVault

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with DevVault(config):
        if not config.tokens and not config.clients:
            logging.getLogger("scaivault_operator.devvault").warning(
                "no --token or --client given: add a token with POST /_dev/tokens before calling /v1"
            )
        await stop.wait()


def _cmd_dev_vault(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    config = _dev_vault_config(args)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(_serve_dev_vault(config))
    except OSError as exc:  # e.g. the port is taken
        print(f"scaivault-operator dev-vault: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_dev_vault_parser(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "dev-vault",
        help="serve a local ScaiVault (for tests, the demo and benchmarks)",
        description="Serve a local ScaiVault implementing the quickstart API, the OAuth2 client-credentials "
        "token endpoint, fault injection and /_dev admin endpoints. See docs/dev-vault.md.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8200, help="port to bind, 0 for any free one (default: %(default)s)"
    )
    parser.add_argument(
        "--token",
        action="append",
        default=[],
        metavar="TOKEN=SCOPES",
        help="accept a static bearer token with comma-separated scopes, e.g. dev=secrets:read,secrets:write "
        "(repeatable; scopes may be empty: 'TOKEN=')",
    )
    parser.add_argument(
        "--client",
        action="append",
        default=[],
        metavar="ID:SECRET=SCOPES",
        help="accept an OAuth2 client-credentials client that may request these scopes (repeatable)",
    )
    parser.add_argument("--token-ttl", type=int, default=3600, metavar="SECONDS", help="lifetime of issued tokens")
    parser.add_argument("--data", type=Path, metavar="FILE", help="persist secrets in this SQLite file")
    parser.add_argument("--max-body", type=int, default=1024 * 1024, metavar="BYTES", help="largest request body")
    faults = parser.add_argument_group("fault injection (applies to /v1 requests; change at run time via /_dev/faults)")
    faults.add_argument("--latency", type=float, default=0.0, metavar="SECONDS", help="delay before every answer")
    faults.add_argument("--error-rate", type=float, default=0.0, metavar="SHARE", help="share answered 503 (0..1)")
    faults.add_argument("--rate-limit-rate", type=float, default=0.0, metavar="SHARE", help="share answered 429 (0..1)")
    faults.add_argument("--retry-after", default="1", metavar="SECONDS",
                        help="Retry-After of 429 answers; 'none' sends 429s without it")  # fmt: skip
    faults.add_argument("--expire-tokens", action="store_true", help="answer every bearer token 401 token_expired")
    faults.add_argument("--fault-seed", type=int, metavar="N", help="seed of the fault random source")
    faults.add_argument("--fault-calls", metavar="KINDS",
                        help="fault only these call kinds, comma-separated: whoami,read,list,write")  # fmt: skip
    faults.add_argument("--body-fault", choices=DEV_VAULT_BODY_FAULTS, metavar="MODE",
                        help=f"spoil successful answers: {', '.join(DEV_VAULT_BODY_FAULTS)}")  # fmt: skip
    faults.add_argument("--list-version-lag", type=int, default=0, metavar="N",
                        help="lists report every version N lower (never below 1), like a lagging replica")  # fmt: skip
    faults.add_argument("--expire-issued-after", type=int, metavar="N",
                        help="after N more requests, expire every OAuth token issued so far (once)")  # fmt: skip
    parser.add_argument(
        "--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="(default: %(default)s)"
    )
    parser.set_defaults(func=_cmd_dev_vault)


def _cmd_run(args: argparse.Namespace) -> int:
    import asyncio
    import os

    from pydantic import ValidationError

    from scaivault_operator._app.runner import configure_logging, operate
    from scaivault_operator._cogs.kubeconfig import KubeConfigError
    from scaivault_operator._cogs.kubeconfig import load as load_kubeconfig
    from scaivault_operator._cogs.settings import OperatorSettings

    overrides: dict[str, object] = {}
    if args.namespace:
        overrides["namespaces"] = tuple(args.namespace)
    if args.workers is not None:
        overrides["workers"] = args.workers
    if args.liveness is not None:
        overrides["liveness_endpoint"] = args.liveness or None
    if args.metrics_port is not None:
        overrides["metrics_port"] = args.metrics_port
    if args.peering is not None:
        overrides["peering"] = args.peering or None
    if args.peering_priority is not None:
        overrides["peering_priority"] = args.peering_priority
    if args.shard is not None:
        overrides["shard"] = args.shard or None
    if args.selector is not None:
        overrides["selector"] = args.selector or None
    if args.log_format is not None:
        overrides["log_format"] = args.log_format
    if args.verbose:
        overrides["verbose"] = True
    try:
        settings = OperatorSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise _UsageError(f"invalid settings: {problems}") from None
    from scaivault_operator._logic.sharding import Shard

    try:
        Shard.of(settings.shard, settings.selector)
    except ValueError as exc:
        raise _UsageError(f"invalid settings: {exc}") from None
    if args.kubeconfig:
        os.environ["KUBECONFIG"] = str(args.kubeconfig)  # one file, read by kubeconfig.load for both clients
    try:
        load_kubeconfig(service_account_dir=settings.service_account_dir)  # fail fast, before Kopf retries forever
    except KubeConfigError as exc:
        print(f"scaivault-operator run: error: {exc}", file=sys.stderr)
        return 1
    configure_logging(settings)
    asyncio.run(operate(settings))
    return 0


def _add_run_parser(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "run",
        help="run the operator against the cluster in the kubeconfig (or in-cluster config)",
        description="Watch VaultSecrets and connections and materialize Kubernetes Secrets. Settings also come from "
        "SCAIVAULT_OPERATOR_* environment variables (see settings.py); flags win.",
    )
    parser.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                        help="serve only this namespace (repeatable; default: all namespaces)")  # fmt: skip
    parser.add_argument("--kubeconfig", type=Path, metavar="FILE", help="kubeconfig file (default: $KUBECONFIG, "
                        "~/.kube/config, or the in-cluster service account)")  # fmt: skip
    parser.add_argument("--workers", type=int, metavar="N", help="sync jobs that run at once (default 8)")
    parser.add_argument("--liveness", metavar="URL", help="liveness endpoint, '' to disable "
                        "(default http://0.0.0.0:8080/healthz)")  # fmt: skip
    parser.add_argument(
        "--metrics-port", type=int, metavar="PORT", help="port of /metrics, 0 to disable (default 9090)"
    )
    parser.add_argument("--peering", metavar="NAME", help="Kopf peering name for several replicas (one is active); "
                        "needs Kopf's peering CRDs and the peering object (default: standalone)")  # fmt: skip
    parser.add_argument("--peering-priority", type=int, metavar="N", help="peering priority: the highest live one "
                        "is active (default: by seniority, the replica started first)")  # fmt: skip
    parser.add_argument("--shard", metavar="I/N", help="serve only the namespaces that hash to shard I of N (each "
                        "shard its own Deployment and --peering; docs/sharding.md)")  # fmt: skip
    parser.add_argument("--selector", metavar="LABELS", help="serve only the VaultSecrets matching this label "
                        "selector, e.g. shard=a (the other Deployments: shard!=a)")  # fmt: skip
    parser.add_argument("--log-format", choices=["plain", "json"], help="log line format (default plain)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.set_defaults(func=_cmd_run)


def _cmd_demo(args: argparse.Namespace) -> int:
    from scaivault_operator._tools.demo import main as demo_main

    return demo_main(force_emulated=args.emulated)


def _add_demo_parser(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subcommands.add_parser(
        "demo",
        help="local ScaiVault + the operator + crds/examples: watch a Secret appear and follow version 2",
        description="Runs a local ScaiVault, applies crds/examples/ and runs the operator in-process, against the "
        "kubeconfig's cluster when one answers, otherwise against an in-process emulated Kubernetes API (kmock, "
        "from the dev extra).",
    )
    parser.add_argument("--emulated", action="store_true", help="use the emulated API even if a cluster answers")
    parser.set_defaults(func=_cmd_demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scaivault-operator", description="Materializes ScaiVault secrets as Kubernetes Secrets."
    )
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_version_parser(subcommands)
    _add_run_parser(subcommands)
    _add_demo_parser(subcommands)
    _add_dev_vault_parser(subcommands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command = args.func
    try:
        return command(args)
    except _UsageError as exc:
        parser.exit(EXIT_USAGE, f"{parser.prog} {args.command}: error: {exc}\n")


if __name__ == "__main__":
    sys.exit(main())
