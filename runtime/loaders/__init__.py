"""Graph file loaders: native, DNNE/ComfyUI workflow and ComfyUI API prompt formats."""
