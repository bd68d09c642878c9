"""masklab core: datasets, recipe, preprocessing, faces, sampling and training.

Plain Python used by the Streamlit explorer, the CLI (``python -m core``) and the tests.
This package never imports streamlit.
"""

__version__ = "0.1.0"
