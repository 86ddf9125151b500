"""The consumer page: HTML templates, inline CSS and JS shipped as package files, and their texts."""
