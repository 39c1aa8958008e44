"""Webhook receivers served by Airflow's API server (FastAPI apps mounted by crm_sync.plugin)."""
