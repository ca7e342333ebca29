"""The HTTP API (SPEC.md §6b): ``create_app(settings)`` builds the FastAPI application."""
