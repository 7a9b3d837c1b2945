"""Checks a CustomResourceDefinition the way kube-apiserver's CRD admission does, without a cluster.

Owns the apiextensions.k8s.io/v1 rules a CRD *generator* can break, re-implemented from the upstream sources
(kubernetes/apiextensions-apiserver, kubernetes/apiserver, kubernetes/kube-openapi, google/cel-go) and reported
as the server reports them: the same field paths, error types and (mostly) words, e.g.
``spec.validation.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and
generateName, but metadata is implicitly specified``. Pure: no I/O, no cluster, and cel-python is imported only when
CEL checks are asked for (``cel=True``), so the runtime package imports ``crdcheck`` without the ``dev`` extra.

Called by ``crdgen.build_crd`` (so ``make crds`` cannot write a CRD a server would refuse), by the emulators the
tests run against (``bench/fakeapi`` answers 422 ``Invalid``; ``testing.EmulatedCluster`` raises) and by
``tests/unit/crds/test_crdcheck.py``. ``validate_crd`` returns every ``Problem``; ``check_crd`` raises
``InvalidCrdError``, whose message, code and details are the server's Status; ``validate_crd_update`` adds the
update rules; ``estimate_rule_cost`` is the static cost of one CEL rule.

Implemented (upstream source -> rules):

- decoding (``apis/apiextensions/v1``): wrongly typed values (400, ``json: cannot unmarshal ...``) and unknown
  fields (400 under strict field validation, kubectl's default; ``strict=False`` for other clients); v1 defaulting
  (``singular``, ``listKind``, conversion) and the v1->internal conversion that moves per-version schemas,
  subresources and printer columns that are identical in every version to the top level -- why a single-version
  CRD's errors say ``spec.validation.openAPIV3Schema...``;
- ``apis/apiextensions/validation/validation.go``: ``metadata.name`` (DNS subdomain, ``plural.group``), label
  keys and values, annotation keys, the API-approval annotation of ``*.k8s.io`` groups; group, scope, names
  (required, DNS-1035 formats, ``kind != listKind``), versions (names, unique, exactly one storage version, a schema
  each, ``deprecationWarning``), ``status.storedVersions`` as the server sets it, ``preserveUnknownFields``,
  conversion (strategy, webhook client config present, review versions), scale subresource paths, printer columns
  (name, type, format, simple JSONPath), selectable fields; the root with the status subresource (allowed fields,
  type object), no ``nullable`` root; per node: valid ``type``, no ``id``/``$ref``/``additionalItems``/
  ``patternProperties``/``definitions``/``dependencies``/array ``items``/``uniqueItems``, ``properties`` xor
  ``additionalProperties``, defaults forbidden in top-level ``metadata``/``apiVersion``/``kind`` and under
  metadata's ``additionalProperties``, no embedded resource inside metadata, ``x-kubernetes-preserve-unknown-fields``
  only true, ``x-kubernetes-map-type``/``-list-type``/``-list-map-keys`` (types, values, keys that are scalar,
  required or defaulted, non-nullable item properties, no duplicates, atomic set items), and the fields of
  ``x-kubernetes-validations`` (``rule``, ``message``, ``messageExpression``, ``reason``, ``fieldPath`` via
  ``schema/cel/validation.go ValidFieldPath``);
- ``apiserver/schema`` ``convert.go``, ``validation.go``, ``complete.go`` (``NewStructural``,
  ``ValidateStructural``): every node typed (or int-or-string / preserve-unknown-fields), ``items`` on arrays, no
  root ``additionalProperties``, object root, embedded resources (object, properties or preserve-unknown-fields,
  no ``additionalProperties``, string ``kind``/``apiVersion``, object ``metadata``), the root ``metadata`` limited to
  ``type: object`` and ``name``/``generateName`` properties, nothing structural (type, description, default,
  title, nullable, additionalProperties, x-kubernetes-*) inside ``anyOf``/``allOf``/``oneOf``/``not`` except the
  int-or-string patterns, no ``metadata`` there, root value validations only on specified fields, RE2 patterns;
- ``apiserver/schema/defaulting/validation.go``, ``pruning/algorithm.go``, ``objectmeta``, kube-openapi
  ``validate``/``strfmt``: each default (outside ``additionalProperties``) keeps no field its schema prunes and
  validates against its schema -- type, nullable, int-or-string, enum, bounds, lengths, pattern, the formats CRDs
  support, items, properties, required, property counts, allOf/anyOf/oneOf/not -- with kube-openapi's messages;
  embedded-resource defaults name their ``apiVersion`` and ``kind``; defaults of a resource's own
  ``apiVersion``/``kind``/``metadata`` have the right types; with ``cel=True`` the CEL rules of the default's
  subtree compile and hold on it;
- CEL (``cel=True``): ``schema/cel/compilation.go``, ``apis/.../validation/cel_validation.go``,
  ``apiserver/pkg/cel/common/schemas.go`` (the declaration types, with their sizes), ``apiserver/pkg/cel/
  environment`` (which libraries exist), cel-go's parser rules and macro expansion: every ``rule`` and
  ``messageExpression`` parses (cel-python's grammar plus cel-go's reserved words) and type-checks -- undeclared
  identifiers (``cel.bind``, ``math`` and ``base64`` do not exist for CRDs), undefined fields against the schema
  (reserved words such as ``namespace`` as field names only from server 1.32 on: ``server_minor``), field
  selection on non-objects, the overloads of operators and of the standard, string-extension and Kubernetes
  functions in ``_SIGNATURES`` on typed operands, homogeneous literals, comprehension ranges, a bool rule and a
  string message; ``optionalOldSelf`` only with ``oldSelf``, ``oldSelf`` only where correlatable; and the static
  cost, a port of ``cel-go checker/cost.go`` with ``apiserver/pkg/cel/library/cost.go`` (checked against
  upstream's ``TestCostEstimation`` numbers) times the node's cardinality (``cel_validation.go``), limited to
  10,000,000 per expression and 100,000,000 per schema, reported with upstream's messages.

Checked against a real kube-apiserver v1.36 (``dryRun=All``) on every case of the tests and on thousands of random
mutations of this repository's CRDs: same verdict, field paths and error types. Not implemented (the real-server
tier, ``tests/e2e``, covers it): conversion webhook URL/service/caBundle validity; ObjectMeta rules beyond
name/labels/annotation keys; ``objectmeta.Validate`` of embedded ``metadata`` defaults (names, labels); the
runtime CEL cost budget while evaluating defaults, and rules calling a function cel-python lacks are not evaluated
on defaults; the overloads of functions outside ``_SIGNATURES`` (any argument is accepted, the result is untyped,
the cost O(1)) and the unification of parameterised types (``list(int) == list(string)`` passes); the optional
syntax (``?.``, ``[?``); per-version differences other than reserved-word field names (libraries, fields such as
``reason`` or ``optionalOldSelf`` that older servers do not know); the exact words of CEL syntax errors and of
bad values the server prints as whole Go structs.

The implementation lives in private modules, each importing only modules listed before it:

- ``_limits``: the server's limits and the server version checked by default;
- ``_problems``: ``Problem``, ``InvalidCrdError`` and the Status message;
- ``_helpers``: decoded-JSON access, field paths and values as the server prints them;
- ``_names``: the name formats of ``k8s.io/apimachinery/pkg/util/validation``;
- ``_decode``: the decoder's refusals (HTTP 400);
- ``_structural``: structural schemas;
- ``_cel_types``: CEL declarations from the schema;
- ``_cel_parse``: the CEL expression tree and parser;
- ``_cel_check``: the CEL type check and cost estimator;
- ``_cel_context``: each node's CEL type and cardinality, and the schema's cost total;
- ``_openapi``: the per-node schema rules (``specStandardValidatorV3``, ``x-kubernetes-*``, rule fields);
- ``_cel_engine``: compiling the rules and evaluating them on defaults (the only user of cel-python);
- ``_defaults``: defaults, pruning and value validation;
- ``_validator``: the CRD -- metadata, names, versions, conversion, subresources, printer columns, selectable
  fields, and the walk over each schema;
- ``_api``: the entry points re-exported here.
"""

from __future__ import annotations

from ._api import check_crd, estimate_rule_cost, validate_crd, validate_crd_update
from ._cel_parse import CelCompileError as CelCompileError
from ._limits import LATEST_SERVER_MINOR, STATIC_ESTIMATED_COST_LIMIT, STATIC_ESTIMATED_CRD_COST_LIMIT
from ._problems import DECODE_ERROR_TYPES, InvalidCrdError, Problem, invalid_message
from ._problems import ErrorType as ErrorType

__all__ = [
    "DECODE_ERROR_TYPES",
    "LATEST_SERVER_MINOR",
    "STATIC_ESTIMATED_COST_LIMIT",
    "STATIC_ESTIMATED_CRD_COST_LIMIT",
    "InvalidCrdError",
    "Problem",
    "check_crd",
    "estimate_rule_cost",
    "invalid_message",
    "validate_crd",
    "validate_crd_update",
]
