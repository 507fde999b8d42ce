"""The midend: small passes over the checked program, each doing one thing (the p4c way).

* `widths`: the width every arithmetic expression is computed at;
* `coreops`: every primitive expanded into core operations with explicit widths;
* `protocols`: the protocol numbers and tunnel definitions those operations write.

Every back end (P4, the Python hypervisor) only translates what these define.
"""
