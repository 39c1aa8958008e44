"""The sync engine: plain Python, no Airflow imports."""
