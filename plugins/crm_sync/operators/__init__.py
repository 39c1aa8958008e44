"""Generic operators the integration DAGs compose: stage, diff, push, report."""
