"""Maxio Advanced Billing (Chargify) emulator: customers, components, price points, subscriptions."""
