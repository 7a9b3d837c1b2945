"""The argparse CLI in-process: subcommands, flag → config mapping, usage errors, cheap ``version``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import scaivault_operator
from scaivault_operator.cli import _dev_vault_config, build_parser, main


def test_version(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out == f"{scaivault_operator.__version__}\n"


def test_a_subcommand_is_required(capsys):
    with pytest.raises(SystemExit) as raised:
        main([])
    assert raised.value.code == 2


def test_version_imports_nothing_heavy():
    code = (
        "import sys; from scaivault_operator.cli import main; main(['version']); "
        "heavy = [m for m in ('aiohttp', 'httpx', 'pydantic', 'kopf', 'scaivault_operator.devvault') "
        "if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30)
    assert result.stdout.splitlines()[-1] == "[]"


def test_dev_vault_defaults():
    config = _dev_vault_config(build_parser().parse_args(["dev-vault"]))

    assert (config.host, config.port, config.tokens, config.clients) == ("127.0.0.1", 8200, {}, {})
    assert (config.token_ttl, config.max_body, config.data_file) == (3600, 1048576, None)
    assert not config.faults.active
    assert config.faults.retry_after == 1.0


def test_dev_vault_flags_map_onto_the_config(tmp_path):
    args = build_parser().parse_args(
        [
            "dev-vault",
            "--host=0.0.0.0",
            "--port=0",
            "--token=a=secrets:read",
            "--token=b=",
            "--client=ci:s3=secrets:read,secrets:write",
            "--token-ttl=5",
            f"--data={tmp_path / 'v.sqlite3'}",
            "--max-body=2048",
            "--latency=0.5",
            "--error-rate=0.1",
            "--rate-limit-rate=0.2",
            "--retry-after=3",
            "--expire-tokens",
            "--fault-seed=9",
        ]
    )
    config = _dev_vault_config(args)

    assert (config.host, config.port) == ("0.0.0.0", 0)  # noqa: S104 - parsed, not bound
    assert config.tokens == {"a": {"secrets:read"}, "b": set()}
    assert config.clients == {"ci": ("s3", {"secrets:read", "secrets:write"})}
    assert (config.token_ttl, config.data_file, config.max_body) == (5, Path(tmp_path / "v.sqlite3"), 2048)
    faults = config.faults
    assert (faults.latency, faults.error_rate, faults.rate_limit_rate, faults.retry_after) == (0.5, 0.1, 0.2, 3.0)
    assert (faults.expire_tokens, faults.seed, faults.fail_next) == (True, 9, [])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--error-rate=1.5"], "error_rate"),
        (["--error-rate=nan"], "error_rate"),
        (["--latency=-1"], "latency"),
        (["--token=no-equals-sign"], "TOKEN=SCOPES"),
        (["--client=ci=x"], "CLIENT_ID:SECRET=SCOPES"),
        (["--port=99999"], "port"),
        (["--token-ttl=0"], "token_ttl"),
    ],
)
def test_dev_vault_usage_errors(capsys, flags, message):
    with pytest.raises(SystemExit) as raised:
        main(["dev-vault", *flags])

    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("scaivault-operator dev-vault: error:")
    assert message in err
    assert "no-equals-sign" not in err
