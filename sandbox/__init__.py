"""Loopback emulators of the external APIs crm_sync talks to (see sandbox/README.md)."""
