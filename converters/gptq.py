"""GPTQ (Frantar et al., 2022) on an exact symmetric integer grid: each weight column is rounded in turn and
its rounding error, weighted by the inverse Hessian of the layer's inputs (``H = XᵀX / n`` over calibration
tokens), is pushed onto the columns not yet rounded, so the layer's output ``X Wᵀ`` moves less than with
round-to-nearest on the same grid.

The grid is a family's own: signed ``bits``-bit integers in groups of ``group`` input columns (0: one scale
per row), with a symmetric scale rule: torchao's (``max |w| / ((qmax − qmin) / 2)``, what ExecuTorch's 8da4w
and 8da8w weights use) or the extreme's (the value of largest magnitude, signed, over ``qmin``: it lands on
``qmin`` exactly, the other side gets one level less — onnxruntime's MLAS rule for symmetric MatMulNBits, and
llama.cpp's Q4_0). A group's scale is chosen when GPTQ reaches its first column, from the weights as
updated so far (the reference implementation's ``static_groups=False``), or, with ``act_order`` (columns
taken in decreasing order of their Hessian diagonal), all of them first from the unchanged weights. The
result is the integer codes and scales, handed to the runtime's quantized tensor as they are: nothing
re-rounds them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DAMP = 0.01      # the fraction of the mean Hessian diagonal added to it (the reference implementation's)
BLOCK = 128      # columns rounded per lazy batch update


TORCHAO = "torchao"    # scale = max |w| / ((qmax − qmin) / 2)
EXTREME = "extreme"    # scale = w[argmax |w|] / qmin (negative when that value is positive)


@dataclass(frozen=True)
class Grid:
    bits: int
    group: int     # 0: one scale per row
    rule: str = TORCHAO

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1))

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1

    def scale(self, w):
        """One scale per row of ``w`` (the group's columns), by the grid's rule."""
        import torch

        tiny = torch.finfo(torch.float32).smallest_normal
        if self.rule == EXTREME:
            extreme = torch.gather(w, 1, w.abs().argmax(dim=1, keepdim=True))[:, 0] / self.qmin
            return torch.where(extreme.abs() < tiny, torch.full_like(extreme, tiny), extreme)
        amax = w.abs().amax(dim=1)
        return torch.clamp(amax / ((self.qmax - self.qmin) / 2), min=tiny)

    def codes(self, w, scale):
        import torch

        return torch.clamp(torch.round(w * (1.0 / scale).unsqueeze(1)), self.qmin, self.qmax)

    def rtn(self, w) -> tuple[Any, Any]:
        """Round-to-nearest on this grid: (codes, scales [rows, groups])."""
        g = self.group or w.shape[1]
        parts = [w[:, i:i + g] for i in range(0, w.shape[1], g)]
        scales = [self.scale(p) for p in parts]
        import torch

        return torch.cat([self.codes(p, s) for p, s in zip(parts, scales)], dim=1), torch.stack(scales, dim=1)


@dataclass
class Quantized:
    codes: Any      # int8 [rows, cols]
    scales: Any     # float32 [rows, groups]
    group: int      # columns per scale

    def dequantize(self):
        import torch

        return self.codes.to(torch.float32) * torch.repeat_interleave(self.scales, self.group, dim=1)


def gptq(weight, hessian, grid: Grid, *, damp: float = DAMP, block: int = BLOCK, act_order: bool = False) -> Quantized:
    """Quantize ``weight`` [rows, cols] on ``grid`` with GPTQ against ``hessian`` [cols, cols].
    ``act_order``: columns in decreasing order of their Hessian diagonal, every group's scale chosen first
    from the unchanged weights (the reference implementation's ``static_groups``), so the grid is the same."""
    import torch

    w = weight.detach().to(torch.float64).clone()
    n_out, n_in = w.shape
    g = grid.group or n_in
    if n_in % g:
        raise ValueError(f"group {g} does not divide {n_in} columns")
    h = hessian.detach().to(torch.float64).clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    w[:, dead] = 0
    scales = torch.zeros(n_out, n_in // g, dtype=torch.float32)  # chosen and applied in float32, as torchao does
    static = act_order or not grid.group
    if static:
        for j in range(n_in // g):
            scales[:, j] = grid.scale(w[:, j * g:(j + 1) * g].to(torch.float32))
    perm = torch.argsort(torch.diag(h), descending=True) if act_order else torch.arange(n_in)
    w, h = w[:, perm], h[perm][:, perm]
    h += damp * torch.mean(torch.diag(h)) * torch.eye(n_in, dtype=h.dtype)
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    block = max(g, block // g * g) if grid.group else block
    codes = torch.zeros_like(w)
    for i1 in range(0, n_in, block):
        i2 = min(i1 + block, n_in)
        w1 = w[:, i1:i2].clone()
        err = torch.zeros_like(w1)
        hb = hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = i1 + i
            if not static and col % g == 0:
                scales[:, col // g] = grid.scale(w1[:, i:i + g].to(torch.float32))
            s = scales[:, int(perm[col]) // g]
            q = grid.codes(w1[:, i:i + 1].to(torch.float32), s)[:, 0]
            codes[:, col] = q
            e = (w1[:, i] - (q * s).to(torch.float64)) / hb[i, i]
            w1[:, i:] -= e.unsqueeze(1) @ hb[i, i:].unsqueeze(0)
            err[:, i] = e
        w[:, i2:] -= err @ hinv[i1:i2, i2:]
    out = torch.empty_like(codes)
    out[:, perm] = codes
    return Quantized(out.to(torch.int8), scales, g)


def output_error(weight, approx, hessian) -> float:
    """The layer's output error on the calibration inputs relative to its output:
    ``tr(ΔW H ΔWᵀ) / tr(W H Wᵀ)`` (= ‖X ΔWᵀ‖² / ‖X Wᵀ‖²)."""
    import torch

    w = weight.to(torch.float64)
    d = w - approx.to(torch.float64)
    h = hessian.to(torch.float64)
    return float(((d @ h) * d).sum() / ((w @ h) * w).sum())


def rtn(weight, grid: Grid) -> Quantized:
    import torch

    codes, scales = grid.rtn(weight.detach().to(torch.float32))
    return Quantized(codes.to(torch.int8), scales, grid.group or weight.shape[1])
