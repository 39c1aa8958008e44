"""RapidPro (TextIt) API v2 emulator: contacts, fields, groups, flows, flow starts, runs."""
