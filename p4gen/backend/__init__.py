"""P4 back end: P4_16 (v1model) text, P4Info and P4Runtime entries for the NIC part."""
