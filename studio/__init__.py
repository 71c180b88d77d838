"""LoRA Studio core: config, models, data, templates, runs, train (the worker), chat. No Gradio here.

Note: the unsloth wheel installs a top-level package also named `studio`; run from the repo root
so this one wins (tests/test_package.py checks).
"""
__version__ = "0.1.0"
