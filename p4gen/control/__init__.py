"""Talking to a P4Runtime target: push (pipeline + entries), read back, differences."""
