"""The engine, one module per stage of an alert's flow (``docs/architecture.md``):
intake → routing → incident → guards → ladder (a pure decision) → step → action →
verification → escalation, with typed outcomes (``outcomes``), the action contract
(``contract``), a run's shared state (``run``, ``journal``) and one owner of every
background task (``supervisor``); ``core`` wires them together.

Imports no client library and never reads the wall clock: everything goes through
``remediator.ports``, the store's protocols and ``remediator.clock``.
"""
