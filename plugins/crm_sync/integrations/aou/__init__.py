"""All of Us participants (HealthPro + REDCap) to Salesforce: source, rules, synthetic data."""
