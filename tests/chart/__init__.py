"""Tests of the Helm chart: lint, render, strict validation, RBAC and pod security."""
