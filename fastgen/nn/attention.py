"""DRAW's read and write heads as modules (Gregor et al. 2015, eqs. 21-29).

Each module can own the linear layer that maps a decoder state h to the 5 window parameters (and,
for writing, to the patch), which is how DRAW uses them; or take the parameters directly.
"""
from __future__ import annotations

from torch import Tensor, nn

from fastgen.ops.attention import attention_read, attention_write


def _exactly_one(op: str, h: Tensor | None, params: Tensor | None) -> None:
    if (h is None) == (params is None):
        raise ValueError(f"{op}: pass exactly one of h (decoder state) or params ([B, 5] window parameters)")


class _WindowHead(nn.Module):
    """Optional linear map from a hidden state to the 5 raw window parameters."""

    def __init__(self, hidden_size: int | None):
        super().__init__()
        self.to_params = nn.Linear(hidden_size, 5) if hidden_size is not None else None

    def window(self, op: str, h: Tensor | None, params: Tensor | None) -> Tensor:
        _exactly_one(op, h, params)
        if params is not None:
            return params
        if self.to_params is None:
            raise ValueError(f"{op}: this module was built without hidden_size, so it needs params, not h")
        return self.to_params(h)


class GaussianRead(_WindowHead):
    """Reads an N x N glimpse from every channel: [B,C,H,W] -> [B,C,N,N].

    DRAW reads the image and the error image together; stack them as channels so one call serves both.
    """

    def __init__(self, N: int, hidden_size: int | None = None):
        super().__init__(hidden_size)
        self.N = N

    def forward(self, x: Tensor, h: Tensor | None = None, params: Tensor | None = None) -> Tensor:
        return attention_read(x, self.window("GaussianRead", h, params), self.N)

    def extra_repr(self) -> str:
        return f"N={self.N}, head={self.to_params is not None}"


class GaussianWrite(_WindowHead):
    """Writes N x N patches onto H x W images, optionally adding into a canvas (fused).

    With hidden_size, forward(h=...) also maps h to the patch (DRAW's w_t = W(h_dec)).
    """

    def __init__(self, N: int, height: int, width: int, channels: int = 1, hidden_size: int | None = None):
        super().__init__(hidden_size)
        self.N, self.height, self.width, self.channels = N, height, width, channels
        self.to_patch = nn.Linear(hidden_size, channels * N * N) if hidden_size is not None else None

    def forward(
        self,
        w: Tensor | None = None,
        h: Tensor | None = None,
        params: Tensor | None = None,
        canvas: Tensor | None = None,
    ) -> Tensor:
        if w is None:
            if h is None or self.to_patch is None:
                raise ValueError("GaussianWrite: pass the patch w, or h to a module built with hidden_size")
            w = self.to_patch(h).view(h.shape[0], self.channels, self.N, self.N)
        return attention_write(w, self.window("GaussianWrite", h, params), self.height, self.width, canvas)

    def extra_repr(self) -> str:
        return f"N={self.N}, size=({self.height}, {self.width}), channels={self.channels}, head={self.to_params is not None}"
