"""``kubectl scaivault``: the kubectl plugin that explains what the operator did, and why (``kubectl.py`` is its entry).

The plugin runs as the *user*, with the user's kubeconfig (``_cogs.kubeconfig`` + lightkube, async), never with the
operator's rights: every Kubernetes call it makes is its own (``cluster``), and what the user may not read it says
it cannot read. It reuses the operator's models and pure decisions — ``_cogs.api`` (the CRDs), ``_cogs.scaivault``
(the client), ``_logic.policy.check_access``, ``_logic.manifests`` (the desired Secret, the data hash, who owns a
Secret), ``_logic.conditions`` (reasons) — so that it judges exactly as the operator does; it never imports the
running operator (``_core``, ``_app``): an import-linter contract puts this package beside ``_core``, as an
independent sibling.

Modules:

- ``output``: exit codes, ``PluginError``, tables, JSON/YAML, the ✓/✗ marks (pure);
- ``workloads``: which pod templates reference a Secret, and how (pure, reused by later features);
- ``cluster``: the plugin's Kubernetes calls and their errors → exit codes;
- ``source``: a connection's credentials read with the user's rights, and its ScaiVault client;
- ``status``, ``why``, ``versions``, ``render``, ``refresh``: one command each;
- ``main``: the argument parser and the dispatch.

Secrets are the product: no Secret value, token or client secret is ever printed, except the values ``render
--show-values`` shows to a user the API server says may read the target Secret anyway.
"""
