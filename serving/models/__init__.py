"""Servable models: one class per family, the Protocols callers use, and the family registry."""
