"""Shared pytest configuration for every suite."""
