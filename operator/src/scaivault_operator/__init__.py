"""scaivault-operator: materializes ScaiVault secrets as Kubernetes Secrets.

The package is split by concern; see ``docs/architecture.md``. Importing the top-level package is cheap: it
loads nothing but the version string, so the CLI can answer ``version`` without pulling in Kopf.
"""

__version__ = "0.1.0"
