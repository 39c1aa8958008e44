"""crm_sync: one sync engine and the hooks, operators and DAG helpers around it."""
