# The Airflow image for docker-compose.yaml: the official image plus the pinned requirements
# and crm_sync installed as a distribution, so its connection types show in the UI
# (reference/airflow-plugins.md section 3).
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:0 requirements.txt /opt/airflow/requirements.txt
RUN pip install --no-cache-dir -r /opt/airflow/requirements.txt
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow/crm_sync_dist/
COPY --chown=airflow:0 plugins /opt/airflow/plugins
# Editable: the package path is /opt/airflow/plugins, which compose mounts from ./plugins,
# so code edits need no image rebuild.
RUN cd /opt/airflow/crm_sync_dist && ln -s /opt/airflow/plugins plugins \
    && pip install --no-cache-dir --no-deps -e .
