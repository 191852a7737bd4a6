"""kana-native's random draws, re-derived in Python/numpy for bench/torch_recipes.py --same-draws.

Each function mirrors one of the engine's streams, with the engine's arithmetic:
  * SplitMix64 (crates/kana-core/src/rng.rs): the generator behind the He initialisation (Box–Muller
    in f64, one normal per weight, rounded to f32) and the per-epoch Fisher–Yates shuffle (Lemire's
    multiply-shift `below`);
  * the dropout masks (crates/kana-core/src/dropout.rs): mix32 of (model seed, optimiser step,
    1-based hidden layer, r·width + j), kept when ≥ floor(p·2³²), scaled by f32(1/(1 − p));
  * the augmentation (crates/kana-core/src/augment.rs): the parameters of row r at step `step` from
    the same hash (layer "aug1"), and the inverse map with bilinear sampling in f64 on the u8
    pixels, written as f32(v)/255 — the engine's own formula, operation for operation, so the
    result is its batch bit for bit (recipes.mjs checks it against the engine's augmentBatch).
Not a test; recipes.mjs proves every stream against the engine before it trains.
"""
import math

import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
AUG_TAG = 0x61756731


def mix64(z):
    """SplitMix64's output function (numpy uint64 arrays, wrapping)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


class SplitMix64:
    """rng.rs's Rng, on Python integers (the state is one u64)."""

    def __init__(self, state):
        self.state = int(state) & MASK64

    def next_u64(self):
        self.state = (self.state + GOLDEN) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def shuffle(self, xs):
        """Fisher–Yates from the end, j = below(i + 1) = (x·(i + 1)) >> 64, in place."""
        for i in range(len(xs) - 1, 0, -1):
            j = (self.next_u64() * (i + 1)) >> 64
            xs[i], xs[j] = xs[j], xs[i]
        return xs


def he_init(seed, sizes):
    """Mlp::with_config's weights: layer by layer, in memory order (in × out, row-major), each
    w = f32(normal() · √(2/fan_in)) with normal() = √(−2 ln(1 − u₁))·cos(2π·u₂) from two draws.
    Vectorised: the k-th draw (k = 1, 2, …) of a generator seeded s is mix64(s + k·GOLDEN).
    Returns the weight matrices (in × out, float32) and the generator's state after them."""
    count = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    k = np.arange(1, 2 * count + 1, dtype=np.uint64)
    with np.errstate(over='ignore'):
        z = mix64(np.uint64(int(seed) & MASK64) + k * np.uint64(GOLDEN))
    u = (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
    u1, u2 = 1.0 - u[0::2], u[1::2]
    normal = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2)
    ws, at = [], 0
    for a, b in zip(sizes[:-1], sizes[1:]):
        std = math.sqrt(2.0 / a)
        ws.append((normal[at:at + a * b] * std).astype(np.float32).reshape(a, b))
        at += a * b
    return ws, (int(seed) + 2 * count * GOLDEN) & MASK64


def mix32(h):
    """dropout.rs's mix32 on numpy uint32 arrays (wrapping)."""
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x7FEB352D)
    h = h ^ (h >> np.uint32(15))
    h = h * np.uint32(0x846CA68B)
    return h ^ (h >> np.uint32(16))


def mix32_int(h):
    h &= 0xFFFFFFFF
    h ^= h >> 16
    h = (h * 0x7FEB352D) & 0xFFFFFFFF
    h ^= h >> 15
    h = (h * 0x846CA68B) & 0xFFFFFFFF
    return h ^ (h >> 16)


def layer_key(seed, step, layer):
    """dropout.rs's layer_key: the seed's two words, then the step's low 32 bits, then the layer."""
    seed = int(seed) & MASK64
    lo, hi = seed & 0xFFFFFFFF, seed >> 32
    key = mix32_int(mix32_int(hi ^ 0x9E3779B9) ^ lo)
    key = mix32_int(key ^ (int(step) & 0xFFFFFFFF))
    return mix32_int(key ^ (int(layer) & 0xFFFFFFFF))


def dropout_factor(seed, step, layer, rate, rows, width):
    """rows × width float32: f32(1/(1 − rate)) where unit j of row r is kept, 0 where dropped."""
    key = np.uint32(layer_key(seed, step, layer))
    idx = np.arange(rows * width, dtype=np.uint32)
    keep = mix32(key ^ idx) >= np.uint32(math.floor(rate * 4294967296.0))
    return np.where(keep, np.float32(1.0 / (1.0 - rate)), np.float32(0.0)).reshape(rows, width)


def augment_params(seed, step, rows, aug):
    """The affine parameters of rows 0..rows−1 at optimiser step `step` (augment.rs Params::draw)."""
    key = np.uint32(layer_key(seed, step, AUG_TAG))
    kr = mix32(key ^ np.arange(rows, dtype=np.uint32))
    u = lambda k: (2.0 * mix32(kr ^ np.uint32(k)).astype(np.float64) + 1.0) / 4294967296.0 - 1.0
    return (aug['rotate'] * u(0) * math.pi / 180.0, 1.0 + aug['scale'] * u(1), aug['shear'] * u(2),
            aug['shift'] * u(3), aug['shift'] * u(4))


def augment(x8, seed, step, aug, side):
    """x8 (B × side², uint8) as the engine augments them at step `step` (row r of the batch has
    the parameters of row r): B × side² float32 in [0, 1], augment.rs `sample` operation for
    operation (sin/cos from libm through Python's math, as Rust's f64::sin/cos)."""
    b = x8.shape[0]
    theta, s, h, tx, ty = augment_params(seed, step, b, aug)
    sin = np.array([math.sin(t) for t in theta])[:, None]
    cos = np.array([math.cos(t) for t in theta])[:, None]
    s, h, tx, ty = s[:, None], h[:, None], tx[:, None], ty[:, None]
    m00, m01, m10, m11 = (cos + h * sin) / s, (sin - h * cos) / s, -sin / s, cos / s
    c = (side - 1.0) / 2.0
    grid = np.arange(side, dtype=np.float64)
    x = np.tile(grid, side)[None, :]    # output column of pixel y·n + x
    y = np.repeat(grid, side)[None, :]  # output row
    qx = x + 0.0 - c - tx
    qy = y + 0.0 - c - ty
    sx = m00 * qx + m01 * qy + c
    sy = m10 * qx + m11 * qy + c
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = sx - x0, sy - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    src = x8.astype(np.float64)
    rows = np.arange(b)[:, None]

    def pixel(yy, xx):
        inside = (yy >= 0) & (xx >= 0) & (yy < side) & (xx < side)
        v = src[rows, np.clip(yy, 0, side - 1) * side + np.clip(xx, 0, side - 1)]
        return np.where(inside, v, 0.0)

    p00, p01, p10, p11 = pixel(y0, x0), pixel(y0, x0 + 1), pixel(y0 + 1, x0), pixel(y0 + 1, x0 + 1)
    top = (1.0 - fx) * p00 + fx * p01
    bottom = (1.0 - fx) * p10 + fx * p11
    val = (1.0 - fy) * top + fy * bottom
    return val.astype(np.float32) / np.float32(255.0)
