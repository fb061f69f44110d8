# The afas-pipeline code location as a gRPC code server on port 4000 (docs/scaling.md). deploy/docker-compose.yml
# also runs the Dagster webserver and daemon from this image (it holds both); the Helm chart uses Dagster's own.
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
# /var/lib/afas-pipeline holds the sync state and the assets' files (AFAS_PIPELINE_STATE, AFAS_PIPELINE_STORAGE):
# mount a volume there (deploy/docker-compose.yml); a new volume takes this folder's owner.
RUN useradd --create-home --uid 10001 dagster \
    && mkdir -p /opt/dagster/home /var/lib/afas-pipeline \
    && chown dagster /opt/dagster/home /var/lib/afas-pipeline
USER dagster
ENV DAGSTER_HOME=/opt/dagster/home \
    AFAS_PIPELINE_STATE=/var/lib/afas-pipeline/state.db \
    AFAS_PIPELINE_STORAGE=/var/lib/afas-pipeline/storage

EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "afas_pipeline.definitions"]
