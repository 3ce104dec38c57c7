"""biomarker: an open speech-biomarker screener for respiratory insufficiency (RI).

Data flows one way: audio -> features -> encoder -> head -> score -> store.
"""

__version__ = "0.1.0"
