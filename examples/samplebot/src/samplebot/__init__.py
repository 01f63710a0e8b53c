"""A small chat bot service that botops.runbook deploys in its demo and tests."""
