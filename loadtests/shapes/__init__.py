"""Load shapes, one per file: locust uses the shape class of any file given with -f (`-f a.py,b.py`)."""
