"""The midend: small passes over the checked program, each doing one thing (the p4c way).

`widths` gives every arithmetic expression the width it is computed at, so that
every back end (P4, the Python hypervisor) only translates one meaning.
"""

from p4gen.midend.widths import infer_widths

__all__ = ["infer_widths"]
