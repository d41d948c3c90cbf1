from tests.harness.conftest import CONFIG, ROOT, deploy_dirs, deploy_env  # noqa: F401  (shared fixtures)
