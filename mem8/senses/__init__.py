"""Senses: what the server hears and reads becomes memory. Audio is transcribed (audio.py);
documents and images are read in a child process with limits (documents.py)."""
