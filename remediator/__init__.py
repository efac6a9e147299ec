"""remediator: turns Alertmanager webhooks into safe, verified, audited remediation.

The package is layered: ``model`` (pure data), ``matching`` and ``templating``
(pure functions), ``engine`` (the incident state machine, talking only to the
Protocols in ``ports``), ``actions`` (what a step does, through ports), and at
the edge ``adapters`` (the only modules importing third-party clients),
``store``, ``server`` and ``cli``.
"""

__version__ = "0.1.0"
