"""Pipedrive API emulator."""
