"""Salesforce emulator: OAuth2, REST (SOQL, sObjects, Collections), Bulk API 2.0."""
