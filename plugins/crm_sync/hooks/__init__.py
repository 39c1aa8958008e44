"""Hooks: one per external system, domain verbs returning typed results."""
