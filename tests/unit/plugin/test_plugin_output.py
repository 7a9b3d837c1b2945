"""The plugin's output and exit codes (``_plugin/output.py``, ``cluster.failure``, ``source.vault_failure``): tables,
JSON/YAML, marks, and which failure ends with which exit code."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml
from lightkube import ApiError
from lightkube.core.exceptions import ConfigError

from scaivault_operator._cogs import scaivault
from scaivault_operator._cogs.kubeconfig import KubeConfigError
from scaivault_operator._plugin.cluster import failure
from scaivault_operator._plugin.output import (
    ExitCode,
    Report,
    format_report,
    labels_of,
    marks_for,
    short,
    table,
    worst,
)
from scaivault_operator._plugin.source import vault_failure

# -- tables ---------------------------------------------------------------------------------------------------------


def test_table_aligns_columns_three_spaces_apart_without_trailing_spaces():
    text = table(["name", "reason", "synced"], [("app", "Synced", 3), ("a-much-longer-name", None, "")])

    assert text.splitlines() == [
        "NAME                 REASON   SYNCED",
        "app                  Synced   3",
        "a-much-longer-name   -        -",
    ]


def test_table_cells_are_one_line_and_booleans_read_as_words():
    text = table(["a", "b"], [("two\nlines  here", True), (False, 0)])

    assert text.splitlines() == ["A                B", "two lines here   True", "False            0"]
    assert all(line == line.rstrip() for line in text.splitlines())


def test_table_without_rows_is_the_header():
    assert table(["kind", "name"], []) == "KIND   NAME"


def test_table_refuses_a_row_of_the_wrong_width():
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        table(["a", "b", "c"], [(1, 2)])


@pytest.mark.parametrize(
    ("message", "width", "expected"),
    [
        (None, 10, "-"),
        ("", 10, "-"),
        ("  spaced\n out\ttext ", 80, "spaced out text"),
        ("0123456789abc", 10, "012345678…"),
        ("0123456789", 10, "0123456789"),
    ],
)
def test_short(message, width, expected):
    assert short(message, width) == expected


# -- formats --------------------------------------------------------------------------------------------------------


def test_format_report_in_each_format():
    report = Report(data={"a": 1, "b": ["x", "é"]}, text="A TABLE", notes=["cannot list X"])

    assert format_report(report, "table") == "A TABLE\n"
    assert json.loads(format_report(report, "json")) == {"a": 1, "b": ["x", "é"], "notes": ["cannot list X"]}
    assert yaml.safe_load(format_report(report, "yaml")) == {"a": 1, "b": ["x", "é"], "notes": ["cannot list X"]}
    assert "notes" not in json.loads(format_report(Report(data={"a": 1}, text=""), "json"))


def test_yaml_keeps_the_report_order():
    text = format_report(Report(data={"zeta": 1, "alpha": 2}, text=""), "yaml")
    assert text.index("zeta") < text.index("alpha")


@pytest.mark.parametrize(
    ("encoding", "ok"),
    [("utf-8", "✓"), ("UTF8", "✓"), ("ascii", "+"), ("latin-1", "+"), (None, "+"), ("no-such-codec", "+")],
)
def test_marks_fall_back_to_ascii(encoding, ok):
    marks = marks_for(encoding)
    assert marks.of("ok") == ok
    assert {marks.of("fail"), marks.of("unknown"), marks.of("info")} <= {"✗", "?", "•", "x", "-"}


def test_worst_exit_code():
    assert worst() is ExitCode.OK
    assert worst(ExitCode.OK, ExitCode.NOT_READY) is ExitCode.NOT_READY
    assert worst(ExitCode.NOT_READY, ExitCode.UNREACHABLE) is ExitCode.UNREACHABLE
    assert worst(ExitCode.FORBIDDEN, ExitCode.UNREACHABLE, ExitCode.NOT_READY) is ExitCode.FORBIDDEN
    assert [int(c) for c in ExitCode] == [0, 1, 2, 3, 4]


def test_labels_of_reads_metadata_labels():
    assert labels_of({"metadata": {"labels": {"a": "b"}}}) == {"a": "b"}
    assert labels_of(None) == {}
    assert labels_of({"metadata": {"labels": ["x"]}}) == {}


# -- exit codes of failures -----------------------------------------------------------------------------------------


def api_error(code: int, message: str = "the server's words") -> ApiError:
    request = httpx.Request("GET", "https://k8s.example/api/v1/namespaces/a/secrets/b")
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "message": message,
        "reason": "Forbidden",
    }
    return ApiError(request=request, response=httpx.Response(code, json=body, request=request))


@pytest.mark.parametrize(
    ("error", "code", "words"),
    [
        (api_error(401), ExitCode.FORBIDDEN, "refused your credentials (HTTP 401"),
        (
            api_error(403, 'secrets "b" is forbidden: User "bob" cannot get'),
            ExitCode.FORBIDDEN,
            'forbidden (HTTP 403: secrets "b" is forbidden: User "bob" cannot get)',
        ),
        (api_error(404), ExitCode.NOT_READY, "HTTP 404"),
        (api_error(422), ExitCode.NOT_READY, "HTTP 422"),
        (api_error(429), ExitCode.UNREACHABLE, "cannot answer now (HTTP 429"),
        (api_error(503), ExitCode.UNREACHABLE, "cannot answer now (HTTP 503"),
        (
            httpx.ConnectError("[Errno 111] Connection refused"),
            ExitCode.UNREACHABLE,
            "cannot reach the API server (ConnectError: [Errno 111] Connection refused)",
        ),
        (httpx.ReadTimeout("timed out"), ExitCode.UNREACHABLE, "cannot reach the API server (ReadTimeout"),
        (ConfigError("Exec kubelogin returned 1"), ExitCode.UNREACHABLE, "cannot log in to the API server"),
        (KubeConfigError("no kubeconfig"), ExitCode.UNREACHABLE, "cannot log in"),
    ],
)
def test_kubernetes_failures_map_onto_exit_codes(error, code, words):
    result = failure("get Secret a/b", error)

    assert result.code is code
    assert result.message.startswith("get Secret a/b: ")
    assert words in result.message


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (scaivault.UnauthenticatedError("GET secret 'a': HTTP 401", status_code=401), ExitCode.FORBIDDEN),
        (scaivault.ForbiddenError("GET secret 'a': HTTP 403 access_denied", status_code=403), ExitCode.FORBIDDEN),
        (
            scaivault.UnauthenticatedError(
                "POST token endpoint: HTTP 400", status_code=400, endpoint=scaivault.Endpoint.TOKEN
            ),
            ExitCode.FORBIDDEN,
        ),
        (scaivault.NotFoundError("GET secret 'a': HTTP 404 not_found", status_code=404), ExitCode.NOT_READY),
        (scaivault.UnavailableError("GET secret 'a': timed out (ReadTimeout)"), ExitCode.UNREACHABLE),
        (scaivault.RateLimitedError("GET secret 'a': HTTP 429"), ExitCode.UNREACHABLE),
        (scaivault.ResponseError("GET secret 'a': unexpected answer: version (missing)"), ExitCode.UNREACHABLE),
        (scaivault.BadRequestError("GET secret 'a': HTTP 400", status_code=400), ExitCode.NOT_READY),
        (scaivault.ConfigurationError("a CA bundle could not be read"), ExitCode.NOT_READY),
    ],
)
def test_scaivault_failures_map_onto_exit_codes(error, code):
    result = vault_failure(error, via="ClusterVaultConnection default")

    assert result.code is code
    assert "ClusterVaultConnection default" in result.message
    assert str(error) in result.message
