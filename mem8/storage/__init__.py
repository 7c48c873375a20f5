"""Persistence: memories, their associations, files and actor state on disk."""
