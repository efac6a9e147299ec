"""Engine: intake, incidents, guards, the step ladder, verification and recovery.

Imports no client library and never reads the wall clock: everything goes through
``remediator.ports`` and ``remediator.clock``.
"""
