"""Presentation: writing results out — the report folder (``report``) and the app's downloads
(``downloads``: figures, numbers, tensors). Imports the study layer and plotting, never the app."""
