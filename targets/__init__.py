"""Target profiles (TOML), installed as package data (p4gen.targets)."""
