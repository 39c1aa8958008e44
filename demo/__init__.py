"""`make demo`: run the integrations end to end against the sandbox and print what they did."""
