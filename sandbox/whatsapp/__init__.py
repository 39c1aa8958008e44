"""WhatsApp Business API (On-Premises) / Turn.io emulator: login and the contacts check."""
