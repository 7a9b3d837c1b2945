"""``kubectl scaivault``'s command line (``_plugin/main.py``, ``source.parse_connection_arg``): arguments, usage errors
(exit 2), no cluster (exit 3), the entry point, and the layering: the plugin never loads the running operator."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import grimp
import pytest

from scaivault_operator._plugin.main import build_parser, main, parse_ref
from scaivault_operator._plugin.output import ExitCode, UsageError
from scaivault_operator._plugin.source import parse_connection_arg


def run(*argv: str, environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err, environ=environ if environ is not None else {})
    return code, out.getvalue(), err.getvalue()


# -- NS/NAME --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "namespace", "expected"),
    [
        ("shop/payments-api", None, ("shop", "payments-api")),
        ("shop/payments-api", "shop", ("shop", "payments-api")),
        ("payments-api", None, ("ctx-ns", "payments-api")),
        ("payments-api", "shop", ("shop", "payments-api")),
        ("a/b.c-d", None, ("a", "b.c-d")),
    ],
)
def test_parse_ref(value, namespace, expected):
    assert parse_ref(value, namespace, "ctx-ns") == expected


@pytest.mark.parametrize(
    ("value", "namespace", "words"),
    [
        ("shop/", None, "use NAMESPACE/NAME or NAME"),
        ("/name", None, "use NAMESPACE/NAME or NAME"),
        ("a/b/c", None, "use NAMESPACE/NAME or NAME"),
        ("shop/x", "other", "names namespace shop, but -n says other"),
        ("Shop/x", None, "is not a namespace name"),
        ("shop/X_Y", None, "is not an object name"),
        ("x", "bad_ns", "is not a namespace name"),
        ("a" * 64 + "/x", None, "is not a namespace name"),
    ],
)
def test_parse_ref_refuses(value, namespace, words):
    with pytest.raises(UsageError, match=words.replace("/", ".")) as raised:
        parse_ref(value, namespace, "ctx-ns")
    assert raised.value.code is ExitCode.USAGE


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("default", ("ClusterVaultConnection", "default")),
        ("ClusterVaultConnection/default", ("ClusterVaultConnection", "default")),
        ("clustervaultconnections/a", ("ClusterVaultConnection", "a")),
        ("cvc/a", ("ClusterVaultConnection", "a")),
        ("VaultConnection/vault", ("VaultConnection", "vault")),
        ("vconn/vault", ("VaultConnection", "vault")),
        ("VAULTCONNECTIONS/vault", ("VaultConnection", "vault")),
    ],
)
def test_parse_connection_arg(value, expected):
    assert parse_connection_arg(value) == expected


@pytest.mark.parametrize("value", ["Secret/x", "cvc/", "a/b/c", "/x", ""])
def test_parse_connection_arg_refuses(value):
    with pytest.raises(UsageError, match="--connection"):
        parse_connection_arg(value)


# -- the parser -----------------------------------------------------------------------------------------------------


def test_global_flags_before_or_after_the_command():
    parser = build_parser()
    before = parser.parse_args(["--kubeconfig", "k", "--context", "c", "-o", "json", "status", "-A"])
    after = parser.parse_args(["status", "-A", "--kubeconfig", "k", "--context", "c", "-o", "json"])
    defaults = parser.parse_args(["status"])

    for args in (before, after):
        assert (args.kubeconfig, args.context, args.output, args.all_namespaces) == ("k", "c", "json", True)
    assert (defaults.kubeconfig, defaults.context, defaults.output, defaults.request_timeout) == (
        None,
        None,
        "table",
        10.0,
    )
    assert (defaults.namespace, defaults.all_namespaces) == (None, False)


def test_each_command_parses():
    parser = build_parser()
    assert parser.parse_args(["why", "shop/app"]).ref == "shop/app"
    versions = parser.parse_args(["versions", "apps/db", "--connection", "vconn/v", "-n", "shop"])
    assert (versions.path, versions.connection, versions.namespace) == ("apps/db", "vconn/v", "shop")
    assert parser.parse_args(["refresh", "app", "-n", "shop"]).namespace == "shop"
    render = parser.parse_args(["render", "shop/app", "--show-values", "-o", "yaml", "--request-timeout", "2.5"])
    assert (render.show_values, render.output, render.request_timeout) == (True, "yaml", 2.5)
    assert parser.parse_args(["render", "shop/app"]).show_values is False


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["nope"], "invalid choice: 'nope'"),
        (["status", "-n", "a", "-A"], "not allowed with argument"),
        (["status", "-o", "wide"], "invalid choice: 'wide'"),
        (["why"], "the following arguments are required: NS/NAME"),
        (["versions", "apps/db"], "the following arguments are required: --connection"),
        (["versions", "apps/db", "--connection", "x", "-n", "a", "-A"], "not allowed with argument"),
        (["status", "--request-timeout", "0"], "must be more than 0"),
        (["status", "--request-timeout", "soon"], "is not a number of seconds"),
    ],
)
def test_usage_errors_exit_2_on_our_stderr(argv, words):
    code, out, err = run(*argv)

    assert code == 2
    assert out == ""
    assert words in err
    assert err.startswith("usage: kubectl scaivault")


def test_usage_errors_found_after_parsing_exit_2(tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\nusers: [{name: u, user: {}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n"
    )
    for argv, words in (
        (["why", "a/b/c"], "kubectl scaivault why: 'a/b/c': use NAMESPACE/NAME or NAME"),
        (["versions", "apps/db", "--connection", "Secret/x"], "--connection 'Secret/x'"),
        (["versions", "apps//db", "--connection", "x"], "PATH: secret path has an empty segment"),
        (["versions", "apps/db", "--connection", "vconn/x", "-A"], "a VaultConnection serves only its own namespace"),
    ):
        code, out, err = run(*argv, "--kubeconfig", str(kubeconfig))
        assert (code, out) == (2, ""), (argv, err)
        assert words in err, err


def test_help_exits_0_on_our_stdout():
    code, out, err = run("--help")
    assert (code, err) == (0, "")
    for command in ("status", "why", "versions", "refresh", "render"):
        assert command in out
    code, out, _ = run("render", "--help")
    assert code == 0
    assert "--show-values" in out


def test_no_kubeconfig_at_all_exits_3(tmp_path):
    code, out, err = run("status", "--kubeconfig", str(tmp_path / "missing"))
    assert (code, out) == (3, "")
    assert err == f"error: no usable Kubernetes configuration: kubeconfig {tmp_path / 'missing'} does not exist\n"


def test_an_api_server_that_does_not_answer_exits_3(tmp_path):
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:1'}}]\nusers: [{name: u, user: {}}]\n"
        "contexts: [{name: x, context: {cluster: c, user: u, namespace: shop}}]\n"
        "current-context: x\n"
    )
    for argv in (
        ["status"],
        ["why", "app"],
        ["refresh", "app"],
        ["render", "app"],
        ["versions", "a/b", "--connection", "x"],
    ):
        code, out, err = run(*argv, "--kubeconfig", str(kubeconfig))
        assert (code, out) == (3, ""), argv
        assert "cannot reach the API server (ConnectError" in err, err


# -- the package: entry point and layering --------------------------------------------------------------------------


def test_the_entry_point_is_installed():
    script = Path(sys.executable).parent / "kubectl-scaivault"
    if not script.exists():
        pytest.skip("kubectl-scaivault is not installed: pip install -e .")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: kubectl scaivault")


FORBIDDEN_FOR_THE_PLUGIN = (
    "scaivault_operator._core",
    "scaivault_operator._app",
    "scaivault_operator.testing",
    "scaivault_operator._tools",
    "scaivault_operator.devvault",
    "scaivault_operator.crdcheck",
)  # (kopf: ``_cogs.kubeconfig`` imports it inside Kopf's login function only; the next test checks it stays out)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("scaivault_operator", include_external_packages=True)


@pytest.mark.parametrize("importer", ["scaivault_operator.kubectl", "scaivault_operator._plugin"])
@pytest.mark.parametrize("imported", FORBIDDEN_FOR_THE_PLUGIN)
def test_the_plugin_never_imports_the_running_operator_or_dev_tools(graph, importer, imported):
    """Not even indirectly: the plugin judges with ``_logic`` and ``_cogs`` only."""
    chain = graph.find_shortest_chain(importer=importer, imported=imported, as_packages=True)
    assert chain is None, f"{importer} imports {imported}: {' -> '.join(chain or ())}"


def test_running_a_command_loads_neither_kopf_nor_the_operator(tmp_path):
    code = (
        "import sys; from scaivault_operator.kubectl import main; "
        f"rc = main(['status', '--kubeconfig', {str(tmp_path / 'none')!r}]); "
        "print(rc, [m for m in ('kopf', 'scaivault_operator._core', 'scaivault_operator._app', "
        "'scaivault_operator.devvault') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.splitlines()[-1] == "3 []"


# -- the docs -------------------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[3]


def _subparsers() -> dict[str, Any]:
    [action] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_the_reference_documents_every_command_flag_and_exit_code():
    doc = (REPO / "docs" / "kubectl-plugin.md").read_text(encoding="utf-8")
    for name, parser in _subparsers().items():
        assert f"### `{name}" in doc, name
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in doc or f" {option} " in doc or f"{option}`" in doc, (name, option)
    for code in ExitCode:
        assert f"\n| {int(code)} | " in doc, code


def test_the_readme_section_names_each_command_and_links_the_reference():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("### When a secret does not arrive")
    section = readme[start : readme.index("\n### ", start + 1)]
    for command in ("status", "why", "render", "versions", "refresh"):
        assert f"kubectl scaivault {command}" in section, command
    assert "[docs/kubectl-plugin.md](docs/kubectl-plugin.md)" in section
