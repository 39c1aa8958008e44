"""Salesforce <-> Mobile Commons (seed 003): nightly profile sync and the 5-minute opt-in push."""
