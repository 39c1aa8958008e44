"""Marketo (Adobe Marketo Engage) REST API emulator."""
