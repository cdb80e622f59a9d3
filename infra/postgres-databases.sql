-- The databases beside the `mlflow` one the postgres image creates: Prefect's and the
-- prediction log's, owned by the same user.
CREATE DATABASE prefect OWNER gradeline;
CREATE DATABASE predictions OWNER gradeline;
