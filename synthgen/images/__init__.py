"""Images: the shared types, one module per reader, ``read_images`` and the writers (``io.py``)."""
