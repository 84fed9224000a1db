"""bgcore: the engine behind bgexplorer (data, models, training, evaluation). Never imports streamlit."""

__version__ = "0.1.0"
