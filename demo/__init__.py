"""The Gradio app of refine: layout, callbacks and session wiring (UI only)."""
