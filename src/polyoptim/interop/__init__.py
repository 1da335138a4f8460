"""Interop: safe readers (and writers) of other frameworks' checkpoint files, shared by the
dialects. Nothing here executes code found in a file."""
