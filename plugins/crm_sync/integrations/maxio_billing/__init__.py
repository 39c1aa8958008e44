"""Seed 004: closed-won Salesforce opportunities -> Maxio Advanced Billing and the Maxio Core link."""
