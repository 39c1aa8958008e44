"""Mobile Commons (Upland) REST API emulator."""
