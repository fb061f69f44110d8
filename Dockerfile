# The afas-pipeline code location as a gRPC code server (docs/scaling.md). The Dagster webserver and daemon run
# from Dagster's own images (deploy/docker-compose.yml, deploy/helm/values.yaml) and load it over port 4000.
FROM python:3.11-slim

# No .pyc files in the image, log lines straight to the container's log.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1

WORKDIR /opt/afas-pipeline
# The checkout as .dockerignore lets it through: the package, its mappings/ and docs/ (found next to the package,
# hence the editable install), and afas_sandbox only because setuptools packages it with the project.
COPY . .
# The `postgres` extra (the instance's storage), not `sandbox` or `test`: a production image talks to the real APIs.
RUN pip install --no-cache-dir -e ".[postgres]"

# A user of its own: the code server and the run workers started from this image never run as root.
RUN useradd --create-home --uid 10001 dagster && mkdir -p /opt/dagster/home && chown dagster /opt/dagster/home
USER dagster
ENV DAGSTER_HOME=/opt/dagster/home

EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "afas_pipeline.definitions"]
