"""PixelRNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016): the Row LSTM and Diagonal BiLSTM models.

model.py     PixelRNN, PixelRNNConfig, LSTMLayer (the recurrences are fastgen.ops.row_lstm / diagonal_bilstm)
"""
from fastgen.models.pixelrnn.model import LAYERS, LSTMLayer, PixelRNN, PixelRNNConfig

__all__ = ["LAYERS", "LSTMLayer", "PixelRNN", "PixelRNNConfig"]
