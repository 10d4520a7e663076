"""Verification of generated code against reference interpreters."""
