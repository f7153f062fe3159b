"""The pipeline's MLflow user: created (or its password reset) with the admin's credentials.

Run by the Job mlflow-users once the server answers. MLflow's AuthServiceClient signs in with
MLFLOW_TRACKING_USERNAME/PASSWORD, which the Job sets to the admin's; the user it creates is
PIPELINE_USERNAME/PASSWORD, the credentials every pipeline pod then signs in with. Idempotent:
an existing user gets the Secret's password again, so re-running after a rotation applies it.
"""
import os
import sys
import time

from mlflow.exceptions import MlflowException, RestException
from mlflow.server.auth.client import AuthServiceClient

TIMEOUT = 600


def main() -> int:
    uri = os.environ["MLFLOW_TRACKING_URI"]
    username, password = os.environ["PIPELINE_USERNAME"], os.environ["PIPELINE_PASSWORD"]
    client = AuthServiceClient(uri)
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            client.create_user(username, password)
            print(f"mlflow-users: created {username} on {uri}", flush=True)
            return 0
        except RestException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            client.update_user_password(username, password)
            print(f"mlflow-users: {username} exists on {uri}; password set from the Secret", flush=True)
            return 0
        except MlflowException as error:   # the server is not up yet
            if time.monotonic() > deadline:
                print(f"mlflow-users: {uri} did not answer in {TIMEOUT} s: {error}", file=sys.stderr)
                return 1
            time.sleep(5)


if __name__ == "__main__":
    sys.exit(main())
