"""Two-way Marketo <-> Pipedrive sync (seed 001): mappings, matching cascades, no-echo state."""
