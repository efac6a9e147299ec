"""The action catalogue: each action is a name, a pydantic params model and an
``Action`` implementation (``plan`` reads and computes, ``apply`` acts idempotently).

``registry.CATALOGUE`` maps names to ``ActionSpec``; playbooks are validated
against it at load time.
"""
