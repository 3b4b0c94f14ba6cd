"""Allow ``python -m mlflow_launcher`` (same as the ``mlflow-launcher`` console script)."""

from mlflow_launcher.cli import main

raise SystemExit(main())
