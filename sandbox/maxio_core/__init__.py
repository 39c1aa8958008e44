"""Maxio Core (formerly SaaSOptics) emulator: customers, registers, contracts (DRF-style API)."""
