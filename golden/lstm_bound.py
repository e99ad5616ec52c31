"""Per-sample bound on |golden - float| for the ESE LSTM (docs/ese.md, "Error bound").

"Float" is the compressed model in exact arithmetic on the unquantized input (float64
torch in the tests): every weight its matrix's float centroid (``LayerInfo.codebook[v]``,
indices decoded from the image), float biases (``LayerInfo.bias``) and float peepholes.
The bound follows the golden trajectory frame by frame (``run_lstm(..., trace=True)``):
every term is evaluated at golden's own values, products and σ/tanh with their exact
second-order remainders, so the bound holds for every sequence that neither saturates
nor wraps (``inf`` otherwise), not only to first order.

Two propagations are implemented (``mode``):

- ``"affine"`` (default): each error is a linear form over error symbols plus a
  componentwise remainder. Symbol 0 carries every local error golden's own values
  determine exactly, with its sign (weight, bias and input quantization, every rounding,
  the tables' error at golden's input); one symbol per state component per frame carries
  what only a magnitude is known of (Taylor remainders of σ/tanh and of the products,
  the peephole quantization). The forms go through the weights and the gate slopes with
  their signs, so errors the LSTM's dynamics damp are damped in the bound too.
- ``"componentwise"``: docs/numerics.md's MLP recursion per element (``|W| e``), σ/tanh
  by their Lipschitz constants (1/4, 1) plus the table's maximum error. Rigorous but it
  grows geometrically with the sequence on any recurrent weights (docs/ese.md).
"""

from __future__ import annotations

import numpy as np

from contract.lstm_image import LSTMImage
from contract.lstm_layout import gate_rows, padded

from .lstm_model import decode_matrices, quantize_sequence, run_lstm, table_lookup

__all__ = ["MODES", "sigmoid", "table_max_error", "lstm_error_bound"]

MODES = ("affine", "componentwise")

#: Stages whose saturation voids the bound (a σ/tanh input outside the table range does
#: not: the table error includes the clamp).
_VOIDING = ("gates", "cell", "proj", "head")


def sigmoid(x):
    """Logistic function in float64, accurate in both tails."""
    x = np.asarray(x, np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _d_sigmoid(x):
    s = sigmoid(x)
    return s * (1.0 - s)


def _d_tanh(x):
    return 1.0 - np.tanh(x) ** 2


# name: (f, f', f(-inf), f(+inf), sup |f'|, sup |f''|)
_FUNCTIONS = {
    "sigmoid": (sigmoid, _d_sigmoid, 0.0, 1.0, 0.25, 1.0 / (6.0 * np.sqrt(3.0))),
    "tanh": (np.tanh, _d_tanh, -1.0, 1.0, 1.0, 4.0 / (3.0 * np.sqrt(3.0))),
}


def table_max_error(image: LSTMImage, name: str) -> float:
    """Largest ``|T(u) - f(u)|`` of the image's σ (``"sigmoid"``) or ``"tanh"`` unit over
    every integer input code ``u`` of any width (the clamp included).

    Inside the table range every code is evaluated; outside it the unit outputs its end
    value and ``f`` is monotone, so the supremum there is at the end code or at the limit
    ``f(-inf)`` / ``f(+inf)``.
    """
    cfg = image.config
    f_act = cfg.channel.act_frac
    fn, _, low, high, _, _ = _FUNCTIONS[name]
    table = image.sigmoid if name == "sigmoid" else image.tanh
    half = 1 << (cfg.table_range_log2 + f_act)
    codes = np.arange(-half, half, dtype=np.int64)
    out = table_lookup(table, codes, cfg)[0] / 2.0 ** cfg.gate_frac
    inside = np.abs(out - fn(codes / 2.0 ** f_act)).max()
    return float(max(inside, abs(out[0] - low), abs(out[-1] - high)))


def _widen(lin, width: int):
    """``lin`` with zero columns appended up to ``width`` symbols (symbols a form does
    not have yet do not affect it)."""
    extra = width - lin.shape[2]
    if extra <= 0:
        return lin
    return np.concatenate([lin, np.zeros(lin.shape[:2] + (extra,))], axis=2)


class _Form:
    """Error ``golden - float`` of a vector quantity: ``L @ xi + r`` with symbols ``xi`` in
    ``[-1, 1]``, ``xi_0 = 1`` and ``|r| <= rho`` (``L`` [batch, dim, symbols], ``rho``
    [batch, dim]). Forms may hold different numbers of symbols."""

    def __init__(self, lin, rho):
        self.lin, self.rho = lin, rho

    @classmethod
    def zero(cls, batch: int, dim: int):
        return cls(np.zeros((batch, dim, 1)), np.zeros((batch, dim)))

    @property
    def bound(self):
        return np.abs(self.lin).sum(axis=2) + self.rho

    def scale(self, d):
        """``d * error`` for a known elementwise factor ``d`` [batch, dim]."""
        return _Form(self.lin * d[:, :, None], self.rho * np.abs(d))

    def __add__(self, other):
        width = max(self.lin.shape[2], other.lin.shape[2])
        return _Form(_widen(self.lin, width) + _widen(other.lin, width),
                     self.rho + other.rho)

    def plus(self, rho):
        """Add a remainder of magnitude at most ``rho``."""
        return _Form(self.lin, self.rho + rho)

    def known(self, value):
        """Add an error golden's values determine exactly (symbol 0, which is 1)."""
        lin = self.lin.copy()
        lin[:, :, 0] += value
        return _Form(lin, self.rho)

    def rows(self, start: int, stop: int):
        return _Form(self.lin[:, start:stop], self.rho[:, start:stop])

    def placed(self, dim: int):
        """This form as the first rows of a ``dim``-row form (the other rows exact)."""
        size = self.rho.shape[1]
        lin = np.zeros((self.lin.shape[0], dim, self.lin.shape[2]))
        rho = np.zeros((self.rho.shape[0], dim))
        lin[:, :size], rho[:, :size] = self.lin, self.rho
        return _Form(lin, rho)

    @staticmethod
    def stack(forms):
        """Forms of consecutive rows as one."""
        width = max(f.lin.shape[2] for f in forms)
        return _Form(np.concatenate([_widen(f.lin, width) for f in forms], axis=1),
                     np.concatenate([f.rho for f in forms], axis=1))

    def condense(self, first: int):
        """Turn the remainder into new symbols ``first ..`` (one per component): exact
        for what follows, each component's remainder being some value in its
        interval."""
        dim = self.rho.shape[1]
        lin = _widen(self.lin, first + dim)
        idx = np.arange(dim)
        lin[:, idx, first + idx] = self.rho
        return _Form(lin, np.zeros_like(self.rho))


class _Matrix:
    """One matrix of the image as dense arrays (packed row order, or ``rows``): the float
    centroids ``w`` (what float uses), golden's integers, the float bias and the
    write-back constants."""

    def __init__(self, image: LSTMImage, tiles, k: int, rows=None):
        mats = image.matrices
        info = mats.layers[k]
        per_tile = mats.config.rows_per_tile
        width = max(t.n_cols for t in tiles)
        idx = np.zeros((len(tiles) * per_tile, width), np.int64)
        ints = np.zeros_like(idx)
        bias = np.zeros(len(tiles) * per_tile, np.int64)
        for t, tile in enumerate(tiles):
            idx[t * per_tile + tile.rows, tile.cols] = tile.indices
            ints[t * per_tile + tile.rows, tile.cols] = tile.values
            bias[t * per_tile:t * per_tile + tile.n_rows] = tile.bias
        rows = np.arange(info.n_out) if rows is None else rows
        idx, self.ints, self.bias_int = idx[rows], ints[rows], bias[rows]
        self.w = np.asarray(info.codebook, np.float64)[idx]
        self.support = (idx != 0).astype(np.float64)
        self.bias = np.zeros(len(rows)) if info.bias is None else np.asarray(info.bias)[rows]
        self.w_frac, self.relu, self.has_bias = info.w_frac, info.relu, info.has_bias
        self.n_cols = width
        self.act_frac = mats.config.act_frac

    def golden(self, q_in):
        """Golden's write-back value before saturation and ReLU (real), integer input."""
        acc = q_in[:, :self.n_cols] @ self.ints.T + self.bias_int
        s = self.w_frac
        t = (acc + (1 << (s - 1))) >> s if s > 0 else acc
        return t * 2.0 ** -self.act_frac

    def local(self, q_in, a_hat):
        """Golden's output minus the float matrix applied to golden's own input: codebook
        and bias quantization and output rounding, exactly, with their signs."""
        return self.golden(q_in) - (a_hat[:, :self.n_cols] @ self.w.T + self.bias)

    def carry(self, form: _Form) -> _Form:
        """The float matrix applied to an input error: through the linear part with the
        weights' signs, through the remainder with their magnitudes."""
        lin = np.tensordot(self.w, form.lin[:, :self.n_cols], axes=([1], [1]))
        return _Form(np.ascontiguousarray(lin.transpose(1, 0, 2)),
                     form.rho[:, :self.n_cols] @ np.abs(self.w).T)


def _curvature(name, z_hat, e):
    """``sup |f''|`` over ``[z_hat - e, z_hat + e]``: ``|f''|`` is even and rises to its
    peak at ``x*`` (ln(2 + sqrt 3) for σ, atanh(1/sqrt 3) for tanh), then falls."""
    fn, dfn, _, _, _, peak = _FUNCTIONS[name]
    at = np.log(2.0 + np.sqrt(3.0)) if name == "sigmoid" else np.arctanh(1.0 / np.sqrt(3.0))

    def second(x):
        y = fn(x)
        return np.abs(dfn(x) * ((1.0 - 2.0 * y) if name == "sigmoid" else -2.0 * y))

    lo, hi = np.maximum(np.abs(z_hat) - e, 0.0), np.abs(z_hat) + e
    return np.where((lo <= at) & (at <= hi), peak, np.maximum(second(lo), second(hi)))


def _unit_form(name, z_hat, y_hat, err: _Form) -> _Form:
    """``y_hat - f(z)`` where ``z_hat - z`` is ``err``: golden's table error at its own
    input (exact), ``f'(z_hat)`` times ``err``, and the Taylor remainder
    ``|f''| e**2 / 2`` (or the two slopes times ``e`` when smaller). Where that exceeds
    what the function's range allows, the range itself is the bound."""
    fn, dfn, low, high, lip, _ = _FUNCTIONS[name]
    e = err.bound
    slope = dfn(z_hat)
    remainder = np.minimum(0.5 * _curvature(name, z_hat, e) * e * e, (lip + slope) * e)
    out = err.scale(slope).plus(remainder).known(y_hat - fn(z_hat))
    trivial = np.maximum(np.abs(y_hat - low), np.abs(y_hat - high))
    worse = ~(out.bound <= trivial)
    out.lin[worse] = 0.0
    out.rho[worse] = trivial[worse]
    return out


def _product_form(x_hat, ex: _Form, y_hat, ey: _Form) -> _Form:
    """``x_hat y_hat - x y = y_hat dx + x_hat dy - dx dy``."""
    return (ex.scale(y_hat) + ey.scale(x_hat)).plus(ex.bound * ey.bound)


def lstm_error_bound(image: LSTMImage, x, *, per_output: bool = False,
                     mode: str = "affine") -> np.ndarray:
    """Bound on ``|golden output - float output|`` of every sequence.

    Parameters
    ----------
    image : the packed ESE image; its matrices must carry the float codebooks and biases.
    x : float ``[T, n_in]`` or ``[batch, T, n_in]`` input frames.
    per_output : return the bound of every output of every frame (``[..., T, n_out]``)
        instead of the per-sequence maximum (``[...]``).
    mode : one of :data:`MODES`.

    Returns
    -------
    numpy.ndarray
        float64; ``inf`` for a sequence where a gate, cell, projection or head value
        saturates or an accumulator wraps (the bound is not claimed there).

    Raises
    ------
    ValueError
        an unknown ``mode`` (and whatever :func:`golden.lstm_model.run_lstm` raises).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    x = np.asarray(x, np.float64)
    single = x.ndim == 2
    x3 = x[None] if single else x
    q = quantize_sequence(x3, image.config)
    tiles = decode_matrices(image)
    result = run_lstm(image, q, matrices=tiles, trace=True)
    run = _affine if mode == "affine" else _componentwise
    bound = run(image, tiles, result, q, x3)
    void = sum(result.saturation[k] for k in _VOIDING) + result.wraps > 0
    if per_output:
        bound = np.where(void[:, None, None], np.inf, bound)
    else:
        bound = np.where(void, np.inf, bound.reshape(len(x3), -1).max(axis=1, initial=0.0))
    return bound[0] if single else bound


def _layers(image: LSTMImage, tiles):
    """Per LSTM layer: its gate matrix (rows in torch order i, f, g, o), projection and
    golden's peephole weights (real values) with their quantization step."""
    n = image.config.n_pes
    out = []
    for info in image.layers:
        order = gate_rows(info.hidden, n)
        peep, peep_q = np.zeros((3, info.hidden)), 0.0
        if info.peephole:
            r = np.arange(info.hidden)
            local = 3 * (info.cell_base + r // n)
            peep = np.stack([image.peephole[r % n, local + g] for g in range(3)]) \
                * 2.0 ** -info.peep_frac
            peep_q = 2.0 ** -(info.peep_frac + 1)
        out.append(dict(
            gates=_Matrix(image, tiles[info.gates], info.gates, rows=order),
            proj=_Matrix(image, tiles[info.projection], info.projection) if info.proj
            else None, peep=peep, peep_q=peep_q))
    return out


def _golden(image, result, li, t, batch):
    """Golden's real values of layer ``li`` in frame ``t``."""
    cfg = image.config
    act, gate = 2.0 ** -cfg.channel.act_frac, 2.0 ** -cfg.gate_frac
    info = image.layers[li]
    tr = result.trace[li]
    v = {k: tr[k][:, t] * gate for k in ("i", "f", "g", "o", "tanh_c")}
    v.update({k: tr[k][:, t] * act for k in ("u_i", "u_f", "u_g", "u_o", "m")})
    v["c"] = result.c[li][:, t] * gate
    v["c_prev"] = result.c[li][:, t - 1] * gate if t else np.zeros((batch, info.hidden))
    v["h_prev"] = result.h[li][:, t - 1] * act if t else np.zeros((batch, info.n_out))
    shift = cfg.gate_frac - cfg.channel.act_frac
    v["tc"] = ((result.c[li][:, t] + (1 << (shift - 1))) >> shift) * act
    return v


def _affine(image: LSTMImage, tiles, result, q, x3):
    cfg = image.config
    ch = cfg.channel
    n, f_act = ch.n_pes, ch.act_frac
    act = 2.0 ** -f_act
    batch, steps, width = x3.shape
    layers = _layers(image, tiles)
    heads = [_Matrix(image, tiles[k], k) for k in image.head]
    x_hat = q * act
    # Symbol 0 carries the errors golden's values determine; then one symbol per state
    # component (c and h of every layer) per frame.
    used = 1
    state = [(_Form.zero(batch, info.hidden), _Form.zero(batch, info.n_out))
             for info in image.layers]
    bound = np.zeros((batch, steps, image.n_out))
    for t in range(steps):
        # layer 0 reads x_hat, whose error x_hat - x is known exactly
        q_a = np.zeros((batch, padded(width, n)), np.int64)
        q_a[:, :width] = q[:, t]
        a_form = _Form.zero(batch, width).known(x_hat[:, t] - x3[:, t]) \
            .placed(q_a.shape[1])
        for li, (info, layer) in enumerate(zip(image.layers, layers, strict=True)):
            g = _golden(image, result, li, t, batch)
            c_form, h_form = state[li]
            base = q_a.shape[1]
            q_full = np.zeros((batch, base + padded(info.n_out, n)), np.int64)
            q_full[:, :base] = q_a
            if t:
                q_full[:, base:base + info.n_out] = result.h[li][:, t - 1]
            gates = layer["gates"]
            u_hat = gates.golden(q_full)                          # before the peepholes
            z = gates.carry(_Form.stack([a_form, h_form.placed(q_full.shape[1] - base)])) \
                .known(gates.local(q_full, q_full * act))
            hid = info.hidden
            z_i, z_f, z_g, z_o = (z.rows(k * hid, (k + 1) * hid) for k in range(4))

            def peephole(k, c_hat, c_err, u_hat=u_hat, g=g, layer=layer, hid=hid):
                """golden's term (the table input minus the gate's pre-activation) minus
                ``p c`` = its rounding + ``p_hat dc + (p_hat - p)(c_hat - dc)``."""
                if not layer["peep_q"]:
                    return c_err.scale(np.zeros_like(c_hat))
                row = (0, 1, 3)[k] * hid                     # gate i, f or o
                term = g["u_" + "ifo"[k]] - u_hat[:, row:row + hid]
                p = np.broadcast_to(layer["peep"][k], c_hat.shape)
                return c_err.scale(p).plus(layer["peep_q"] * (np.abs(c_hat) + c_err.bound)) \
                    .known(term - p * c_hat)

            e_i = _unit_form("sigmoid", g["u_i"], g["i"], z_i + peephole(0, g["c_prev"], c_form))
            e_f = _unit_form("sigmoid", g["u_f"], g["f"], z_f + peephole(1, g["c_prev"], c_form))
            e_g = _unit_form("tanh", g["u_g"], g["g"], z_g)
            e_c = (_product_form(g["f"], e_f, g["c_prev"], c_form)
                   + _product_form(g["i"], e_i, g["g"], e_g)) \
                .known(g["c"] - (g["f"] * g["c_prev"] + g["i"] * g["g"]))
            e_o = _unit_form("sigmoid", g["u_o"], g["o"], z_o + peephole(2, g["c"], e_c))
            e_t = _unit_form("tanh", g["tc"], g["tanh_c"], e_c.known(g["tc"] - g["c"]))
            e_m = _product_form(g["o"], e_o, g["tanh_c"], e_t) \
                .known(g["m"] - g["o"] * g["tanh_c"])
            if layer["proj"] is not None:
                proj = layer["proj"]
                q_m = np.zeros((batch, proj.n_cols), np.int64)
                q_m[:, :hid] = result.trace[li]["m"][:, t]
                e_h = proj.carry(e_m.placed(proj.n_cols)).known(proj.local(q_m, q_m * act))
            else:
                e_h = e_m
            e_c = e_c.condense(used)
            used += hid
            e_h = e_h.condense(used)
            used += info.n_out
            state[li] = (e_c, e_h)
            q_a = np.zeros((batch, padded(info.n_out, n)), np.int64)
            q_a[:, :info.n_out] = result.h[li][:, t]
            a_form = e_h.placed(q_a.shape[1])
        e_y = a_form
        for j, matrix in enumerate(heads):
            pre = matrix.carry(e_y).known(matrix.local(q_a, q_a * act))
            if matrix.relu:
                # max(u_hat, 0) - max(z, 0) = d (u_hat - z) with d in [0, 1]: 1 or 0 when
                # the interval around golden's pre-activation does not contain 0.
                u_hat = matrix.golden(q_a)
                e = pre.bound
                d = np.where(u_hat >= e, 1.0, np.where(u_hat <= -e, 0.0, 0.5))
                pre = pre.scale(d).plus(np.where(d == 0.5, 0.5 * e, 0.0))
            e_y = pre
            q_a = result.trace[-1]["head"][j][:, t]
        bound[:, t] = e_y.bound[:, :image.n_out]
    return bound


def _componentwise(image: LSTMImage, tiles, result, q, x3):
    cfg = image.config
    ch = cfg.channel
    n, f_act = ch.n_pes, ch.act_frac
    half, cell_round = 2.0 ** -(f_act + 1), 2.0 ** -(cfg.gate_frac + 1)
    batch, steps, width = x3.shape
    layers = _layers(image, tiles)
    heads = [_Matrix(image, tiles[k], k) for k in image.head]
    eps = {name: table_max_error(image, name) for name in _FUNCTIONS}

    def matrix(m: _Matrix, a_hat, e_in):
        """docs/numerics.md: rounding + codebook + carried-in + bias quantization."""
        a_hat, e_in = a_hat[:, :m.n_cols], e_in[:, :m.n_cols]
        return (half + 2.0 ** -(m.w_frac + 1) * (np.abs(a_hat) @ m.support.T)
                + e_in @ np.abs(m.w).T
                + (2.0 ** -(f_act + m.w_frac + 1) if m.has_bias else 0.0))

    def unit(name, e_in):
        return eps[name] + _FUNCTIONS[name][4] * e_in

    x_hat = q / float(1 << f_act)
    e_h = [np.zeros((batch, info.n_out)) for info in image.layers]
    e_c = [np.zeros((batch, info.hidden)) for info in image.layers]
    bound = np.zeros((batch, steps, image.n_out))
    for t in range(steps):
        a_hat = np.zeros((batch, padded(width, n)))
        a_hat[:, :width] = x_hat[:, t]
        e_a = np.zeros_like(a_hat)
        e_a[:, :width] = np.abs(x_hat[:, t] - x3[:, t])
        for li, (info, layer) in enumerate(zip(image.layers, layers, strict=True)):
            g = _golden(image, result, li, t, batch)
            h_pad = padded(info.n_out, n)
            full_hat = np.concatenate([a_hat, np.zeros((batch, h_pad))], axis=1)
            full_hat[:, a_hat.shape[1]:a_hat.shape[1] + info.n_out] = g["h_prev"]
            full_e = np.concatenate([e_a, np.zeros((batch, h_pad))], axis=1)
            full_e[:, a_hat.shape[1]:a_hat.shape[1] + info.n_out] = e_h[li]
            e_u = matrix(layer["gates"], full_hat, full_e).reshape(batch, 4, info.hidden)

            def peephole(k, c_hat, err, layer=layer):
                if not layer["peep_q"]:
                    return 0.0
                return half + layer["peep_q"] * np.abs(c_hat) \
                    + (np.abs(layer["peep"][k]) + layer["peep_q"]) * err

            e_i = unit("sigmoid", e_u[:, 0] + peephole(0, g["c_prev"], e_c[li]))
            e_f = unit("sigmoid", e_u[:, 1] + peephole(1, g["c_prev"], e_c[li]))
            e_g = unit("tanh", e_u[:, 2])
            # f c - f̂ ĉ = (f - f̂) ĉ + f (c - ĉ) with |f| <= min(|f̂| + e_f, 1); i g alike
            c_new = (cell_round + e_f * np.abs(g["c_prev"])
                     + np.minimum(np.abs(g["f"]) + e_f, 1.0) * e_c[li]
                     + e_i * np.abs(g["g"]) + np.minimum(np.abs(g["i"]) + e_i, 1.0) * e_g)
            e_o = unit("sigmoid", e_u[:, 3] + peephole(2, g["c"], c_new))
            e_t = unit("tanh", half + c_new)
            e_m = (half + e_o * np.abs(g["tanh_c"])
                   + np.minimum(np.abs(g["o"]) + e_o, 1.0) * e_t)
            if layer["proj"] is not None:
                m_hat = np.zeros((batch, layer["proj"].n_cols))
                m_hat[:, :info.hidden] = g["m"]
                e_pad = np.zeros_like(m_hat)
                e_pad[:, :info.hidden] = e_m
                e_h[li] = matrix(layer["proj"], m_hat, e_pad)
            else:
                e_h[li] = e_m
            e_c[li] = c_new
            a_hat = np.zeros((batch, h_pad))
            a_hat[:, :info.n_out] = result.h[li][:, t] * 2.0 ** -f_act
            e_a = np.zeros_like(a_hat)
            e_a[:, :info.n_out] = e_h[li]
        for j, m in enumerate(heads):
            e_a = matrix(m, a_hat, e_a)               # ReLU is 1-Lipschitz
            a_hat = result.trace[-1]["head"][j][:, t] * 2.0 ** -f_act
        bound[:, t] = e_a[:, :image.n_out]
    return bound
