"""The CRM Sync dashboard: a page under Browse in the Airflow UI, JSON endpoints, metrics."""
