"""spec.template (``_logic/templating``): every filter with good input and each of its errors, StrictUndefined, the
sandbox's refusals, the size, step and time bounds, error messages that never quote a value (canaries), mergePolicy,
the Secret's type, labels and annotations, the compile cache, the lazy import of jinja2, and the model's rules."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from scaivault_operator._cogs.api import (
    TEMPLATE_EMPTY_MESSAGE,
    TEMPLATE_KEYS_MESSAGE,
    TEMPLATE_OVERLAP_MESSAGE,
    TEMPLATE_TYPE_MESSAGE,
    Template,
    VaultSecretSpec,
)
from scaivault_operator._logic import conditions, templating
from scaivault_operator._logic.manifests import (
    ANNOTATION_PATH,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SourceDataError,
    desired_secret,
)
from scaivault_operator._logic.manifests import (
    Owner as SecretOwner,
)
from scaivault_operator._logic.templating import (
    MAX_OUTPUT_BYTES,
    MAX_RANGE,
    MAX_STEPS,
    SOURCE_NAME,
    SourceInput,
    TemplateError,
    apply_template,
    key_origins,
    render,
)

CANARY = "CANARY-TPL-7f3a"
DATA = {"user": "app", "password": "p@ss/w:rd", "host": "db.internal", "dbname": "main"}
OWNER = SecretOwner(api_version="scaivault.scailabs.ai/v1alpha1", kind="VaultSecret", name="db", namespace="team-a",
                    uid="uid-1")  # fmt: skip

CERT_1 = "-----BEGIN CERTIFICATE-----\nTEVBRg==\n-----END CERTIFICATE-----\n"
CERT_2 = "-----BEGIN CERTIFICATE-----\nSU5URVJNRURJQVRF\n-----END CERTIFICATE-----\n"
CERT_3 = "-----BEGIN CERTIFICATE-----\nUk9PVA==\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN EC PRIVATE KEY-----\nS0VZ\n-----END EC PRIVATE KEY-----\n"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def encoded(data: dict[str, str]) -> dict[str, str]:
    return {key: b64(value) for key, value in data.items()}


def spec_of(**template: Any) -> VaultSecretSpec:
    return VaultSecretSpec.model_validate({"path": "apps/db", "template": template})


def shape(templates: dict[str, str], data: dict[str, str] | None = None, **template: Any) -> dict[str, str]:
    """The Secret's data as text, for ``template.data`` = ``templates`` over ``data``."""
    spec = spec_of(data=templates, **template)
    out = apply_template(spec, encoded(DATA if data is None else data), version=7)
    return {key: base64.b64decode(value).decode("utf-8", "surrogateescape") for key, value in out.items()}


def one(template: str, data: dict[str, str] | None = None) -> str:
    return shape({"K": template}, data)["K"]


def failure(template: str, data: dict[str, str] | None = None, **kwargs: Any) -> str:
    synced = encoded(DATA if data is None else data)
    sources = kwargs.pop("sources", {SOURCE_NAME: SourceInput(path="apps/db", version=1, data=synced)})
    with pytest.raises(TemplateError) as raised:
        render(Template(data={"K": template}), synced, sources=sources, **kwargs)
    assert raised.value.key == "K"
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None
    return raised.value.message


# -- what a template sees ----------------------------------------------------------------------------------------


def test_database_url_from_four_keys() -> None:
    url = "postgres://{{ data.user }}:{{ data.password | urlquote }}@{{ data.host }}:5432/{{ data.dbname }}"
    assert one(url) == "postgres://app:p%40ss%2Fw%3Ard@db.internal:5432/main"


def test_sources_main_is_the_single_source() -> None:
    assert SOURCE_NAME == "main"
    template = "{{ sources.main.data.user }} {{ sources['main'].data['host'] }} {{ sources.main.path }}@{{ " \
               "sources.main.version }}"  # fmt: skip
    assert one(template) == "app db.internal apps/db@7"


# A composite VaultSecret: two named sources and a dataFrom prefix; ``data`` is their union with a discovered key.
DB = {"host": "db.internal", "password": "p@ss"}
CACHE = {"url": "redis://cache:6379"}
FOUND = {"stripe_api_token": "tok"}


def composite_spec(templates: dict[str, str], **template: Any) -> VaultSecretSpec:
    return VaultSecretSpec.model_validate(
        {
            "sources": [{"name": "db", "path": "apps/db", "version": 3}, {"name": "cache", "path": "apps/cache"}],
            "dataFrom": [{"prefix": "teams/payments/"}],
            "template": {"data": templates, **template},
        }
    )


def composite_sources(db: dict[str, str] = DB) -> dict[str, SourceInput]:
    return {
        "db": SourceInput(path="apps/db", version=3, data=encoded(db)),
        "cache": SourceInput(path="apps/cache", version=12, data=encoded(CACHE)),
    }


def composite(templates: dict[str, str], db: dict[str, str] = DB, **template: Any) -> dict[str, str]:
    spec = composite_spec(templates, **template)
    assert spec.path is None
    union = encoded({**db, **CACHE, **FOUND})
    out = apply_template(spec, union, version=None, sources=composite_sources(db))
    return {key: base64.b64decode(value).decode("utf-8", "surrogateescape") for key, value in out.items()}


def composite_failure(template: str, db: dict[str, str] = DB) -> str:
    with pytest.raises(TemplateError) as raised:
        composite({"K": template}, db)
    assert raised.value.key == "K"
    assert raised.value.__cause__ is None
    assert raised.value.__context__ is None
    return raised.value.message


def test_named_sources_are_visible_with_data_path_and_version() -> None:
    out = composite({
        "DB": "{{ sources.db.data.host }}:{{ sources['db'].data['password'] | urlquote }}@{{ sources.db.path }}"
              "#{{ sources.db.version }}",
        "CACHE": "{{ sources.cache.data.url }} {{ sources.cache.path }}@{{ sources.cache.version }}",
        "NAMES": "{{ sources | list | sort | join(',') }} {{ sources.db.data | list | sort | join(',') }}",
    })  # fmt: skip
    assert out == {
        "DB": "db.internal:p%40ss@apps/db#3",
        "CACHE": "redis://cache:6379 apps/cache@12",
        "NAMES": "cache,db host,password",  # only the named sources; each holds only its own keys
    }


def test_data_is_the_union_and_discovered_secrets_are_only_in_data() -> None:
    out = composite({"ALL": "{{ data | list | sort | join(',') }}", "TOKEN": "{{ data.stripe_api_token }}"},
                    mergePolicy="Merge")  # fmt: skip
    assert out == {**DB, **CACHE, **FOUND, "ALL": "host,password,stripe_api_token,url", "TOKEN": "tok"}


def test_a_source_value_is_decoded_as_data_is() -> None:
    assert composite({"K": "{{ sources.db.data.port + '1' }}"}, {"port": "5432"})["K"] == "54321"
    raw = b"\xff\xfe"  # bytes that are not UTF-8 pass through unchanged; a value not in data is its own
    source = SourceInput(path="a/b", version=1, data={"p12": base64.b64encode(raw).decode()})
    out = render(Template(data={"K": "{{ sources.s.data.p12 }}"}), {}, sources={"s": source})
    assert base64.b64decode(out["K"]) == raw


def test_an_unknown_source_lists_the_names_and_no_value() -> None:
    canary_db = {"host": CANARY, CANARY[:6].lower(): CANARY}
    message = composite_failure("{{ sources.dbx.data.host }}", canary_db)
    assert message == (
        "spec.template.data['K'], line 1: sources has no source 'dbx' (sources: 'cache', 'db'); the Secret keeps "
        "its last data"
    )
    computed = composite_failure("{{ sources[sources.db.data.host] }}", canary_db)
    assert "sources has no source (a name computed while rendering) (sources: 'cache', 'db')" in computed
    assert "CANARY" not in computed, computed


def test_a_missing_key_or_field_of_a_source_is_named_by_the_source() -> None:
    canary_db = {"host": CANARY, "password": f"{CANARY}-pw"}
    message = composite_failure("{{ sources.db.data.hots }}", canary_db)
    assert "line 1: sources.db.data has no key 'hots' (its keys: 'host', 'password')" in message
    assert "sources.cache has no field 'tag' (its fields: 'data', 'path', 'version')" in composite_failure(
        "{{ sources.cache.tag }}"
    )
    for template in ("{{ sources.db.data[sources.db.data.host] }}", "{{ sources.db[sources.db.data.password] }}",
                     "{{ sources.db.data.host.nope }}", "{{ sources.db.data.password + 1 }}"):  # fmt: skip
        message = composite_failure(template, canary_db)
        assert "CANARY" not in message, message


def test_many_source_names_are_clipped() -> None:
    names = [f"s{i:02}" for i in range(templating._MAX_NAMED_KEYS + 5)]
    sources = {name: SourceInput(path=f"a/{name}", version=1, data={}) for name in names}
    message = failure("{{ sources.nope }}", sources=sources)
    assert f"(sources: {', '.join(repr(n) for n in names[: templating._MAX_NAMED_KEYS])} and 5 more)" in message


def test_a_composite_without_named_sources_sees_data_only() -> None:
    spec = VaultSecretSpec.model_validate(
        {"dataFrom": [{"prefix": "teams/payments/"}], "template": {"data": {"K": "{{ data.stripe_api_token }}"}}}
    )
    assert apply_template(spec, encoded(FOUND), version=None, sources={}) == {"K": b64("tok")}
    with pytest.raises(TemplateError, match=r"sources has no source 'main' \(sources: none\)"):
        apply_template(spec.model_copy(update={"template": Template(data={"K": "{{ sources.main.path }}"})}),
                       encoded(FOUND), version=None, sources={})  # fmt: skip


def test_a_composite_template_needs_its_sources() -> None:
    spec = composite_spec({"K": "{{ data.url }}"})
    with pytest.raises(ValueError, match="needs its sources"):
        apply_template(spec, encoded(CACHE), version=None)
    no_template = VaultSecretSpec.model_validate({"sources": [{"name": "db", "path": "apps/db"}]})
    assert apply_template(no_template, encoded(DB), version=None) == encoded(DB)  # nothing to render


def test_single_path_main_is_data_itself() -> None:
    message = failure("{{ sources.main.data.hots }}")
    assert "data has no key 'hots' (its keys: 'dbname', 'host', 'password', 'user')" in message
    assert "sources.main has no field 'nope' (its fields: 'data', 'path', 'version')" in failure(
        "{{ sources.main.nope }}"
    )
    assert one("{{ sources.main.data is sameas data }}") == "True"


def test_values_are_text_after_spec_keys() -> None:
    spec = VaultSecretSpec.model_validate(
        {"path": "a/b", "keys": [{"from": "port", "to": "PORT"}], "template": {"data": {"K": "{{ data.PORT + '1' }}"}}}
    )
    from scaivault_operator._logic.manifests import secret_data

    out = apply_template(spec, secret_data({"port": 5432, "other": "x"}, spec.keys), version=1)
    assert base64.b64decode(out["K"]) == b"54321"  # the number's text, and only the selected (renamed) keys


def test_a_key_wins_over_a_method_of_the_same_name() -> None:
    assert one("{{ data.items }}/{{ data.keys }}", {"items": "I", "keys": "K"}) == "I/K"
    assert one("{% for k, v in data.items() %}{{ k }}={{ v }};{% endfor %}", {"a": "1", "b": "2"}) == "a=1;b=2;"


def test_jinja_basics_work() -> None:
    template = (
        "{% set ns = namespace(n=0) %}{% for k in data | sort %}{% set ns.n = ns.n + 1 %}"
        "{{ loop.index }}:{{ k | upper }}{{ ',' if not loop.last }}{% endfor %} {{ ns.n }}"
        " {{ data.missing | default('none') }} {{ data.user is defined }} {{ (data.host.split('.') | first) }}"
        "{% macro q(v) %}'{{ v }}'{% endmacro %} {{ q(data.user) }} {{ range(3) | list | join('-') }}"
    )
    assert one(template) == "1:DBNAME,2:HOST,3:PASSWORD,4:USER 4 none True db 'app' 0-1-2"


def test_the_template_text_is_kept_as_written() -> None:
    assert one("a\n{{ data.user }}\n") == "a\napp\n"  # a YAML `|` block: its final newline stays
    assert one("{% if true %}\nx{% endif %}") == "\nx"


# -- filters -----------------------------------------------------------------------------------------------------


def test_b64enc_and_b64dec() -> None:
    assert one("{{ data.password | b64enc }}") == b64(DATA["password"])
    assert one("{{ data.password | b64enc | b64dec }}") == DATA["password"]
    assert one("{{ 'aGk' | b64dec }}") == "hi"  # padding optional
    assert one("{{ 'a G\nk=' | b64dec }}") == "hi"  # whitespace ignored
    assert one("{{ '-_8' | b64dec | b64enc }}") == "+/8="  # the URL-safe alphabet
    assert "failed: the input is not valid base64" in failure("{{ '%%%' | b64dec }}")
    assert "the b64enc filter failed: the input is not a string" in failure("{{ 3 | b64enc }}")


def test_b64dec_passes_binary_bytes_through_to_the_secret() -> None:
    raw = bytes(range(256))
    spec = spec_of(data={"keystore.p12": "{{ data.p12 | b64dec }}"})
    out = apply_template(spec, encoded({"p12": base64.b64encode(raw).decode()}), version=1)
    assert base64.b64decode(out["keystore.p12"]) == raw


def test_sha256_and_urlquote() -> None:
    assert one("{{ data.user | sha256 }}") == hashlib.sha256(b"app").hexdigest()
    assert one("{{ 'a b/c?d=e&f@g:h' | urlquote }}") == "a%20b%2Fc%3Fd%3De%26f%40g%3Ah"
    assert "the sha256 filter failed" in failure("{{ [1] | sha256 }}")


def test_tojson_and_fromjson() -> None:
    assert one("{{ data | tojson }}") == json.dumps(DATA, sort_keys=True, separators=(",", ":"))
    assert one("{{ {'b': 1, 'a': [true, none, 'é']} | tojson(indent=2) }}") == (
        '{\n  "a": [\n    true,\n    null,\n    "é"\n  ],\n  "b": 1\n}'
    )
    assert one('{{ (\'{"a": {"b": [1, 2]}}\' | fromjson).a.b[1] }}') == "2"
    assert one("{{ '<&>' | tojson }}") == '"<&>"'  # not HTML-escaped (Jinja's own tojson would)
    assert "not valid JSON (line 1, column 1)" in failure("{{ data.password | fromjson }}")
    assert "the fromjson filter failed: the input is not a string" in failure("{{ 1 | fromjson }}")
    assert "NaN, Infinity" in failure("{{ 'NaN' | fromjson | tojson }}")
    assert "indent must be a number from 0 to 16" in failure("{{ data | tojson(indent=99) }}")
    assert "not plain data (range)" in failure("{{ range(3) | tojson }}")


def test_toyaml_and_fromyaml() -> None:
    assert yaml.safe_load(one("{{ data | toyaml }}")) == DATA
    assert one("{{ {'b': [1, 2], 'a': 'x'} | toyaml }}") == "a: x\nb:\n- 1\n- 2\n"
    assert one("{{ ('a:\n  b: [1, 2]' | fromyaml).a.b | tojson }}") == "[1,2]"
    assert "the fromyaml filter failed: the input is not valid YAML (line 1)" in failure("{{ 'a: b: c' | fromyaml }}")
    big = "x" * (templating.MAX_YAML_SIZE + 1)
    assert "larger than 64 KiB" in failure("{{ data.big | fromyaml }}", {"big": big})
    assert "the toyaml filter failed: the input is larger than 64 KiB" in failure("{{ data | toyaml }}", {"big": big})
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)
    )
    assert "expands to more than 4 MiB" in failure("{{ (data.bomb | fromyaml) | length }}", {"bomb": bomb})


def test_pem_splitting() -> None:
    bundle = KEY + CERT_1 + CERT_2.replace("\n", "\r\n") + CERT_3
    data = {"bundle": bundle}
    assert shape({"all": "{{ data.bundle | pem_certificates | join }}"}, data)["all"] == CERT_1 + CERT_2 + CERT_3
    assert one("{{ data.bundle | pem_certificates | length }}", data) == "3"
    assert one("{{ data.bundle | pem_first_certificate }}", data) == CERT_1
    assert one("{{ data.bundle | pem_chain }}", data) == CERT_2 + CERT_3
    assert one("{{ data.bundle | pem_private_key }}", data) == KEY
    assert one("{{ data.c | pem_chain }}", {"c": CERT_1}) == ""  # a leaf alone has no chain
    assert "the pem_first_certificate filter failed: the input holds no PEM certificate" in failure(
        "{{ data.k | pem_first_certificate }}", {"k": KEY}
    )
    assert "the pem_chain filter failed: the input holds no PEM certificate" in failure("{{ 'x' | pem_chain }}")
    assert "the pem_private_key filter failed: the input holds no PEM private key" in failure(
        "{{ data.c | pem_private_key }}", {"c": CERT_1}
    )
    assert "holds 2 private keys" in failure("{{ data.k | pem_private_key }}", {"k": KEY + KEY})
    assert one("{{ data.c | pem_certificates | length }}", {"c": "no PEM here"}) == "0"


@pytest.mark.parametrize(
    ("password", "salt", "expected"),
    [  # openssl passwd -apr1 -salt SALT PASSWORD
        ("p@ss:wörd", "abcdefgh", "$apr1$abcdefgh$/SKGRkPyeyY1827MFKTzt/"),
        ("", "12345678", "$apr1$12345678$sHuPAw7VA9xjRbJz7zKV7/"),
        ("a-very-long-password-longer-than-sixteen-bytes", "Xy./Z012", "$apr1$Xy./Z012$ur50zJOP1yOUx7n7YJGPi0"),
    ],
)
def test_apr1_matches_openssl(password: str, salt: str, expected: str) -> None:
    assert templating._apr1(password.encode(), salt.encode()) == expected


def test_htpasswd() -> None:
    line = one("{{ htpasswd(data.user, data.password) }}")
    user, _, hashed = line.partition(":")
    assert user == "app"
    assert hashed.startswith("$apr1$")
    assert len(hashed.split("$")[2]) == 8
    assert DATA["password"] not in line
    _, _, salt, _ = hashed.split("$")
    assert templating._apr1(DATA["password"].encode(), salt.encode()) == hashed  # verifies as Apache would
    assert one("{{ data.user | htpasswd(data.password) }}") == line  # as a filter too; the same line every time
    assert one("{{ htpasswd('other', data.password) }}").split("$")[2] != salt  # a salt per user and password
    assert "the user name is empty or holds ':'" in failure("{{ htpasswd('a:b', 'x') }}")
    assert "the htpasswd filter failed: the input is not a string" in failure("{{ htpasswd(data.user, 3) }}")


def test_dockerconfigjson() -> None:
    config = json.loads(one("{{ dockerconfigjson('ghcr.io', data.user, data.password) }}"))
    assert config == {"auths": {"ghcr.io": {"auth": b64("app:p@ss/w:rd"), "password": "p@ss/w:rd", "username": "app"}}}
    assert "the registry is empty" in failure("{{ dockerconfigjson('', 'u', 'p') }}")
    assert "the user name holds ':'" in failure("{{ dockerconfigjson('r', 'u:x', 'p') }}")


def test_our_versions_of_join_replace_indent_string() -> None:
    assert one("{{ [1, 'a', 2.5] | join(', ') }}") == "1, a, 2.5"
    assert one("{{ data.user | replace('p', 'P') }}") == "aPP"
    assert one("{{ 'a\nb' | indent(2, first=True) }}") == "  a\n  b"
    assert one("{{ 'a\nb' | indent('> ') }}") == "a\n> b"
    assert one("{{ [1] | string }}") == "[1]"
    assert "width must be a number or a string of at most 64" in failure("{{ 'a' | indent(10**9) }}")
    assert "the replace filter failed: the result would be larger than 4 MiB" in failure(
        "{{ data.big | replace('', data.big) }}", {"big": "x" * 4096}
    )


def test_unsafe_jinja_filters_are_not_there() -> None:
    for name in ("format", "center", "wordwrap", "batch", "random", "pprint", "urlize", "attr", "xmlattr", "slice"):
        assert f"No filter named '{name}'" in failure(f"{{{{ data.user | {name} }}}}")


# -- StrictUndefined ---------------------------------------------------------------------------------------------


def test_an_undefined_data_key_is_named_with_the_keys_there_are() -> None:
    message = failure("postgres://{{ data.user }}@{{ data.hots }}")
    assert message == (
        "spec.template.data['K'], line 1: data has no key 'hots' (its keys: 'dbname', 'host', 'password', 'user'); "
        "the Secret keeps its last data"
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ nope }}", "'nope' is undefined (the variables are data and sources)"),
        ("{{ sources.db.data.host }}", "sources has no source 'db' (sources: 'main')"),
        ("{{ data.missing.host }}", "data has no key 'missing'"),
        ("{{ data.missing | b64enc }}", "data has no key 'missing'"),
        ("{% if data.missing %}x{% endif %}", "data has no key 'missing'"),
        ("{% for x in data.missing %}{% endfor %}", "data has no key 'missing'"),
        ("{{ data.missing ~ 'x' }}", "data has no key 'missing'"),
        ("{{ data.user.nope }}", "a value has no attribute or key 'nope'"),
        ("line 1\n{{ data.nope }}", "line 2: data has no key 'nope'"),
    ],
)
def test_undefined_names_fail(template: str, expected: str) -> None:
    assert expected in failure(template)


# -- the sandbox -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ data.__class__ }}",
        "{{ data['__class__'] }}",
        "{{ (1).__class__ }}",
        "{{ range.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ htpasswd.__code__ }}",
        "{{ htpasswd.__globals__['base64'] }}",
        "{{ data.user.split.__self__ }}",
        "{{ self.__init__ }}",
        "{% for x in [1] %}{{ loop.__class__ }}{% endfor %}",
        "{% macro m() %}{% endmacro %}{{ m.__call__ }}",
        "{{ data.user.format(1) }}",
        "{{ '{0.__class__}'.format(data) }}",
        "{{ data.user.center(10**9) }}",
        "{{ data.user.zfill(10**9) }}",
        "{{ data.pop('user') }}",
        "{{ data.update({'a': 1}) }}",
        "{{ [].append }}",
    ],
)
def test_sandbox_refuses_attributes_outside_the_allowlist(template: str) -> None:
    assert "is not allowed (sandbox" in failure(template)


@pytest.mark.parametrize(
    "template",
    [
        "{{ cycler.__init__.__globals__.os }}",
        "{{ joiner }}",
        "{{ lipsum(10**6) }}",
        "{{ dict }}",
        "{{ config }}",
        "{{ request }}",
    ],
)
def test_jinja_globals_beyond_ours_are_gone(template: str) -> None:
    assert "is undefined (the variables are data and sources)" in failure(template)


@pytest.mark.parametrize(
    ("template", "word"),
    [
        ("{% include 'x' %}", "include"),
        ("{% import 'x' as y %}", "import"),
        ("{% from 'x' import y %}", "from ... import"),
        ("{% extends 'x' %}", "extends"),
        ("{% autoescape true %}{{ data.user }}{% endautoescape %}", "autoescape"),
    ],
)
def test_no_template_files_and_no_autoescape_blocks(template: str, word: str) -> None:
    assert failure(template) == (
        f"spec.template.data['K']: line 1: {{% {word} %}} is not available in Secret templates; the Secret keeps its "
        "last data"
    )


def test_recursive_loops_are_refused() -> None:
    assert "recursive loops are not available" in failure("{% for x in [1] recursive %}{{ loop([]) }}{% endfor %}")


def test_syntax_errors_name_the_line() -> None:
    assert failure("ok\n{{ data.user") == (
        "spec.template.data['K']: line 2: syntax error: unexpected end of template, expected 'end of print "
        "statement'.; the Secret keeps its last data"
    )
    assert "cannot be compiled (ValueError)" in failure("{{ " + "9" * 5000 + " }}")  # int() refuses the literal


# -- bounds ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{% for i in range(10**9) %}{% endfor %}", f"range() of more than {MAX_RANGE} numbers"),
        ("{% for i in range(10**30) %}{% endfor %}", f"range() of more than {MAX_RANGE} numbers"),
        (
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
            f"more than {MAX_STEPS} steps",
        ),
        (
            "{% macro f(n) %}{% if n > 0 %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
            f"more than {MAX_STEPS} steps",
        ),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion too deep"),
        ("{{ 'x' * 10**9 }}", "a repeated value larger than 4 MiB"),
        ("{{ [data.user] * 10**9 }}", "a repeated value larger than 4 MiB"),
        ("{{ 2 ** 100000 }}", "a number larger than 2**8192"),
        ("{{ (10 ** 2000) * (10 ** 2000) }}", "a number larger than 2**8192"),
        ("{{ '%0999999999d' % 1 }}", "%-formatting of strings is not available"),
        ("{% for i in range(2000) %}{{ 'x' * 1000 }}{% endfor %}", "the rendered value is larger than 1048576"),
        (
            "{% set ns = namespace(s='x' * 4000) %}{% for i in range(2000) %}{% set ns.s = ns.s ~ 'x' * 4000 %}"
            "{% endfor %}",
            "MiB",
        ),
        (
            "{% set x %}{% for i in range(9000) %}{{ 'x' * 4000 }}{% endfor %}{% endset %}{{ x | length }}",
            "more than 32 MiB of values in all",
        ),
        ("{{ range(10000) | map('string') | join(data.big) }}", "the result would be larger than 4 MiB"),
    ],
)
def test_limits(template: str, expected: str) -> None:
    assert expected in failure(template, {**DATA, "big": "y" * 1000})


def test_the_deadline_is_checked_at_every_step() -> None:
    ticks = iter(range(10**6))
    message = failure("{% for i in range(5000) %}{{ i }}{% endfor %}", clock=lambda: next(ticks) * 0.01)
    assert f"rendering took longer than {templating.DEADLINE_SECONDS}s" in message


def test_one_budget_for_every_template_of_a_vaultsecret() -> None:
    loop = "{% for i in range(9000) %}{% endfor %}"
    shape({"a": loop})  # alone it fits
    with pytest.raises(TemplateError, match="steps"):
        shape({f"k{i}": loop for i in range(12)})


def test_the_whole_secret_is_at_most_1_mib() -> None:
    big = "x" * (MAX_OUTPUT_BYTES // 2)
    with pytest.raises(TemplateError) as raised:
        shape({"copy": "{{ data.big }}"}, {"big": big}, mergePolicy="Merge")
    assert raised.value.key is None
    assert raised.value.message.startswith("spec.template: the Secret would hold 1048583 bytes of data")


def test_a_typical_template_stays_far_from_the_bounds() -> None:
    budget_probe = "{% for k, v in data | dictsort %}{{ k }}={{ v | tojson }}\n{% endfor %}"
    assert one(budget_probe).count("\n") == len(DATA)


# -- messages never quote a value --------------------------------------------------------------------------------

CANARY_DATA = {"password": CANARY, "user": f"{CANARY}-user", "json": json.dumps({"k": CANARY}), "num": "12x"}


@pytest.mark.parametrize(
    "template",
    [
        "{{ data[data.password] }}",  # the missing name IS a value
        "{{ data.json | fromjson | attr }}",
        "{{ (data.json | fromjson)[data.password] }}",
        "{{ data.password.nope }}",
        "{{ data.password[data.user] }}",
        "{{ data.password | int + data.password }}",
        "{{ data.password + 1 }}",
        "{{ data.password | fromjson }}",
        "{{ (data.password ~ ': [') | fromyaml }}",
        "{{ (data.password ~ '!') | b64dec }}",
        "{{ data.password | pem_private_key }}",
        "{{ data.password.index('zz') }}",
        "{{ data.password | int(data.password) + 1 }}",
        "{{ data.password / 2 }}",
        "{{ htpasswd(data.password ~ ':', data.password) }}",
        "{{ dockerconfigjson(data.password, data.password ~ ':', 'p') }}",
        "{{ data.password.__class__ }}",
        "{{ data.password ~ data.missing }}",
        "{{ data[data.password ~ '.x'] }}",
        "{% for x in data.password %}{{ x.y }}{% endfor %}",
        "{{ data.password ** 2 }}",
        "{{ data.password * data.password }}",
        "{{ data.password % 2 }}",
        "{{ (data.password * 200000) | replace(data.password, data.password ~ data.password) }}",
        "{{ data.password ~ data.password.missing }}",
        "{{ data.password | pem_chain }}",
    ],
)
def test_error_messages_never_quote_a_value(template: str) -> None:
    message = failure(template, CANARY_DATA)
    assert CANARY not in message, message
    assert "CANARY" not in message, message


def test_a_name_the_template_spells_is_shown_even_when_computed() -> None:
    assert "data has no key 'x-app' (its keys" in failure("{{ data['x-' ~ data.user] }} x-app")
    assert "data has no key (a key computed while rendering)" in failure("{{ data['x-' ~ data.user] }}")


# -- mergePolicy, literals, type, labels, annotations -----------------------------------------------------------


def test_replace_holds_only_the_template_keys() -> None:
    assert shape({"URL": "{{ data.host }}"}, literals={"MODE": "{{ not rendered }}"}) == {
        "URL": "db.internal",
        "MODE": "{{ not rendered }}",
    }


def test_merge_puts_the_template_on_top_of_the_synced_keys() -> None:
    out = shape({"user": "{{ data.user | upper }}", "URL": "{{ data.host }}"}, mergePolicy="Merge")
    assert out == {**DATA, "user": "APP", "URL": "db.internal"}


def test_merge_without_keys_keeps_the_synced_data() -> None:
    spec = spec_of(mergePolicy="Merge", type="kubernetes.io/basic-auth")
    assert apply_template(spec, encoded(DATA), version=1) == encoded(DATA)


def test_literals_alone() -> None:
    spec = spec_of(literals={"a": "plain {{ x }}", "b": "ü"})
    out = apply_template(spec, encoded(DATA), version=1)
    assert out == {"a": b64("plain {{ x }}"), "b": b64("ü")}


def test_no_template_returns_the_data_unchanged() -> None:
    spec = VaultSecretSpec.model_validate({"path": "a/b"})
    assert apply_template(spec, encoded(DATA), version=1) == encoded(DATA)


def test_type_labels_and_annotations_precedence() -> None:
    spec = VaultSecretSpec.model_validate(
        {
            "path": "apps/db",
            "target": {"labels": {"a": "target", "b": "target"}, "annotations": {"n": "target", "m": "target"}},
            "template": {
                "type": "kubernetes.io/basic-auth",
                "data": {"username": "{{ data.user }}"},
                "labels": {"b": "template", MANAGED_BY_LABEL: "someone"},
                "annotations": {"m": "template", ANNOTATION_PATH: "spoofed"},
            },
        }
    )
    manifest = desired_secret(owner=OWNER, spec=spec, data={"username": b64("app")}, version=1, connection="C/d")
    assert manifest["type"] == "kubernetes.io/basic-auth"
    labels, annotations = manifest["metadata"]["labels"], manifest["metadata"]["annotations"]
    assert labels["a"] == "target"
    assert labels["b"] == "template"
    assert labels[MANAGED_BY_LABEL] == MANAGED_BY  # ours win over both
    assert annotations["n"] == "target"
    assert annotations["m"] == "template"
    assert annotations[ANNOTATION_PATH] == "apps/db"


def test_target_type_applies_without_a_template_type() -> None:
    spec = VaultSecretSpec.model_validate(
        {"path": "a/b", "target": {"type": "kubernetes.io/tls"}, "template": {"data": {"tls.crt": "x"}}}
    )
    assert spec.secret_type == "kubernetes.io/tls"
    assert VaultSecretSpec.model_validate({"path": "a/b"}).secret_type == "Opaque"


def test_key_origins() -> None:
    spec = spec_of(data={"URL": "x"}, literals={"MODE": "y"}, mergePolicy="Merge")
    assert key_origins(spec, ["URL", "MODE", "user"]) == {"URL": "template", "MODE": "literal", "user": "source"}


# -- the model ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ({"data": {"a b": "x"}}, TEMPLATE_KEYS_MESSAGE),
        ({"literals": {"..x": "x"}}, TEMPLATE_KEYS_MESSAGE),
        ({"data": {".": "x"}}, TEMPLATE_KEYS_MESSAGE),
        ({"data": {"a": "x"}, "literals": {"a": "y"}}, TEMPLATE_OVERLAP_MESSAGE),
        ({}, TEMPLATE_EMPTY_MESSAGE),
        ({"mergePolicy": "Replace", "type": "kubernetes.io/tls"}, TEMPLATE_EMPTY_MESSAGE),
        ({"data": {"a": "x" * (32 * 1024 + 1)}}, "at most 32768 characters"),
        ({"data": {f"k{i}": "x" for i in range(65)}}, "at most 64 items"),
        ({"data": {"a": "x"}, "type": "kubernetes.io/service-account-token"}, "token types"),
        ({"data": {"a": "x"}, "labels": {"a/b/c": "x"}}, "not a valid label key"),
        ({"data": {"a": "x"}, "stringData": {"b": "y"}}, "Extra inputs are not permitted"),
    ],
)
def test_the_model_refuses(template: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match="template") as raised:
        VaultSecretSpec.model_validate({"path": "a/b", "template": template})
    assert message in str(raised.value)


def test_the_model_refuses_two_types() -> None:
    template = {"type": "kubernetes.io/tls", "mergePolicy": "Merge"}
    with pytest.raises(ValidationError) as raised:
        VaultSecretSpec.model_validate(
            {"path": "a/b", "target": {"type": "kubernetes.io/ssh-auth"}, "template": template}
        )
    assert TEMPLATE_TYPE_MESSAGE in str(raised.value)
    explicit_opaque = {"path": "a/b", "target": {"type": "Opaque"}, "template": template}  # the default: template wins
    assert VaultSecretSpec.model_validate(explicit_opaque).secret_type == "kubernetes.io/tls"


# -- conditions, cache, lazy import -------------------------------------------------------------------------------


def test_a_template_error_is_its_own_non_transient_reason() -> None:
    with pytest.raises(TemplateError) as raised:
        shape({"K": "{{ data.nope }}"})
    assert isinstance(raised.value, SourceDataError)
    failure_ = conditions.classify(raised.value)
    assert failure_.reason == conditions.TEMPLATE_ERROR == "TemplateError"
    assert not failure_.transient
    assert failure_.message == raised.value.message


def test_templates_are_compiled_once_per_text() -> None:
    templating._compile.cache_clear()
    text = "{{ data.user }}-compiled-once"
    for _ in range(5):
        shape({"a": text, "b": text})
    info = templating._compile.cache_info()
    assert info.misses == 1
    assert info.hits == 9
    broken = "{{ data.user"
    for _ in range(3):
        with pytest.raises(TemplateError):
            shape({"a": broken})
    assert templating._compile.cache_info().misses == 2  # a failure is cached too


def test_jinja2_is_imported_only_for_a_template() -> None:
    code = (
        "import sys, base64\n"
        "from scaivault_operator._core import sync, runtime\n"
        "from scaivault_operator._plugin import render\n"
        "from scaivault_operator._logic.templating import apply_template\n"
        "from scaivault_operator._cogs.api import VaultSecretSpec\n"
        "apply_template(VaultSecretSpec.model_validate({'path': 'a/b'}), {'k': 'eA=='}, version=1)\n"
        "assert 'jinja2' not in sys.modules, 'imported without a template'\n"
        "apply_template(VaultSecretSpec.model_validate({'path': 'a/b', 'template': {'data': {'x': '{{ data.k }}'}}}),"
        " {'k': 'eA=='}, version=1)\n"
        "assert 'jinja2' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
