"""``kubectl scaivault``: the kubectl plugin (console script ``kubectl-scaivault``; kubectl finds it on ``PATH``).

A thin entry: the commands live in ``scaivault_operator._plugin`` (``_plugin/main.py`` has the usage). It runs as the
user, with the user's kubeconfig, and never loads the running operator (``_core``, ``_app``). Reference:
docs/kubectl-plugin.md.
"""

from __future__ import annotations

from scaivault_operator._plugin.main import main

__all__ = ["main"]

if __name__ == "__main__":  # python -m scaivault_operator.kubectl
    raise SystemExit(main())
