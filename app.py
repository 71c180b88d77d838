"""Hugging Face Spaces entry point (and `make run`): build the studio and serve it."""
from studio.ui import build_app, launch_kwargs

demo = build_app()

if __name__ == "__main__":
    demo.queue(default_concurrency_limit=4).launch(**launch_kwargs())
