"""The built-in codecs, one module or folder per family (the registry imports them on first use)."""
