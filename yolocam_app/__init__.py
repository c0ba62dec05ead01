"""The Streamlit front end of yolocam: thin widgets over :mod:`yolocam_core`."""
