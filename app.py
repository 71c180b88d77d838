"""Hugging Face Spaces entry point (and `make run`): build the studio and serve it."""
from studio.ui import build_app, serve

demo = build_app()

if __name__ == "__main__":
    serve(demo)
