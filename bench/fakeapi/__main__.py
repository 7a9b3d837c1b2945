"""``python -m bench.fakeapi [--port 8001] [--crds DIR]``: serve the in-memory Kubernetes API until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from . import FakeApi, load_crds


async def _main(args: argparse.Namespace) -> None:
    crds = load_crds(args.crds) if args.crds != "none" else []
    async with FakeApi(host=args.host, port=args.port, crds=crds, strict_namespaces=args.strict_namespaces) as api:
        print(f"fake Kubernetes API on {api.url} (kubectl --server {api.url})", flush=True)
        await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fakeapi", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--crds", default=None, help="directory of CRD YAML files (default: crds/; 'none': none)")
    parser.add_argument("--strict-namespaces", action="store_true", help="404 for objects in missing namespaces")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
