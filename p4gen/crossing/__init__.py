"""The crossing protocol between the NIC and the hypervisor, in one place.

* `states`: the stage state machine both targets run, the drop reasons;
* `protocol`: the punt header p4gen_t and the metadata behind it (p4gen_meta_t),
  defined here in Python; the P4 text is generated from it (`p4text`);
* `numbering`: how pipelines are numbered on the wire;
* `dispatch`: the one host-port dispatcher (`p4gen up`, `p4gen.testing`) and a
  Python model of the NIC's side of the protocol.

Neither back end writes any of this down a second time.
"""

from p4gen.crossing.numbering import pipeline_name, pipeline_numbers
from p4gen.crossing.protocol import (
    CARRIED_PAD,
    FLAG_FORWARDED,
    FLAG_L4_DIRTY,
    PUNT_HEADER,
    RESUME_DONE,
    VERSION,
    Crossing,
    Punted,
    PuntLayout,
    Reason,
    carried_layout,
    crossing,
)
from p4gen.crossing.states import DROP_REASONS, State, drop_sites

__all__ = ["CARRIED_PAD", "DROP_REASONS", "FLAG_FORWARDED", "FLAG_L4_DIRTY", "PUNT_HEADER", "RESUME_DONE", "VERSION",
           "Crossing", "Punted", "PuntLayout", "Reason", "State", "carried_layout", "crossing", "pipeline_name",
           "pipeline_numbers", "drop_sites"]
