"""Lark grammar files of the p4gen DSL, installed as package data (p4gen.grammar)."""
