"""The knowledge skill: full-text search over the caller's text and Markdown files."""
