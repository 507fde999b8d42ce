"""Hand-written P4 pieces used by the emitter, installed as package data (p4gen.p4src)."""
