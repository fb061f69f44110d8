-- The sync state's database next to Dagster's (AFAS_PIPELINE_STATE in docker-compose.yml). The postgres image runs
-- this once, when it creates an empty data volume; on an existing volume create it by hand:
--   docker compose exec postgres createdb -U dagster afas_state
CREATE DATABASE afas_state;
