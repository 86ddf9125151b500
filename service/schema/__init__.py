"""Numbered migration files; see service/migrations.py."""
