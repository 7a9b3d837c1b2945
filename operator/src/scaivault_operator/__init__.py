"""scaivault-operator: materializes ScaiVault secrets as Kubernetes Secrets.

The package is grouped by layer, each a subpackage that imports only from the layers below it (``make lint``
holds it): ``_app`` (the operator process and its Kopf handlers) > ``_core`` (the control loop) > ``_logic``
(pure decisions) > ``_cogs`` (clients and models); beside them ``cli``, ``_tools``, ``testing``, ``crdcheck`` and
``devvault``. The map: ``docs/architecture.md``. Importing the top-level package is cheap: it
loads nothing but the version string, so the CLI can answer ``version`` without pulling in Kopf.
"""

__version__ = "0.1.0"
