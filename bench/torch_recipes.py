#!/usr/bin/python3
"""PyTorch side of the accuracy comparison in bench/recipes.mjs. Not a test.

Run with Debian's interpreter (PyTorch 1.13 is installed there, not for the pyenv python3 on PATH):

    /usr/bin/python3 bench/torch_recipes.py --dir TMP --recipe m3 --seed 1 [--threads 2]
    /usr/bin/python3 bench/torch_recipes.py --check-augment DIR     (see augment_check below)
    /usr/bin/python3 bench/torch_recipes.py --dir TMP --recipe modern --seed 1 --same-draws DRAWS
    /usr/bin/python3 bench/torch_recipes.py --dir TMP --seed 1 --draws DRAWS          (draws_check)
    /usr/bin/python3 bench/torch_recipes.py --dir TMP --seed 1 --check-streams DRAWS  (streams_check)

TMP holds the split that recipes.mjs cut with kana-native's own stratifiedSplit:
    train_images.npy, validation_images.npy, test_images.npy   uint8, N×784
    train_labels.npy, validation_labels.npy, test_labels.npy   int64, N

The training procedure mirrors kana-native's train() (src/train.ts + crates/kana-core):
  * nn.Sequential of Linear + ReLU, softmax cross entropy (nn.CrossEntropyLoss, batch mean);
  * He initialisation (kaiming_normal_, fan_in, relu) and zero biases;
  * pixels / 255 as float32;
  * Adam (betas 0.9/0.999, eps 1e-8) or plain SGD; L2 as `weight_decay` on the weights only
    (biases sit in a parameter group with weight_decay 0, as kana-native applies L2 to weights only);
  * mini-batches sliced from a fresh random permutation every epoch (last batch may be short);
    'gd' = the whole training set as one batch, no shuffling;
  * after every epoch the validation loss; early stopping when it has not been strictly lower than
    the best for `patience` consecutive epochs, then (restoreBest) the best epoch's state_dict.
    With earlyStopping off the best epoch is still tracked (and reported), nothing stops;
  * test accuracy and mean cross-entropy of the final (or restored) weights.

The modern recipe (issue F2; kana-native's `--preset modern`, src/training/presets.ts) adds:
  * nn.Dropout(0.3) after every hidden ReLU (kana-native: inverted dropout after the activation);
  * CrossEntropyLoss(label_smoothing=0.1) for training (targets (1 − ε)·onehot + ε/K, as the engine);
    validation and test losses are the plain cross-entropy, as kana-native reports them;
  * AdamW (betas 0.9/0.999, eps 1e-8), weight decay 1e-2 on the weights only (kana-native decays
    weights, not biases: crates/kana-core/src/optim.rs), no L2;
  * OneCycleLR(max_lr=2e-3, total_steps=epochs, pct_start 0.3, div_factor 25, final_div_factor 1e4,
    anneal 'cos', three_phase False, cycle_momentum False) stepped once per epoch — the rates of
    src/training/schedule.ts exactly (recipes.mjs compares them epoch by epoch). cycle_momentum is
    off because kana-native keeps β1 = 0.9 throughout;
  * every training batch augmented with F.affine_grid + F.grid_sample (bilinear, zero padding,
    align_corners False) with the parameter distributions and geometry of
    crates/kana-core/src/augment.rs (see `affine_theta`); the per-epoch validation pass as above.

--same-draws DRAWS (recipes.mjs --same-draws) trains with kana-native's random draws for the seed
instead of torch's (bench/kana_draws.py re-derives them): the engine's initial weights (DRAWS/w0.npy,
exported by the engine), its per-epoch permutation (SplitMix64 from its state after the
initialisation, DRAWS/draws.json), its dropout masks (applied as x·factor after each hidden ReLU
instead of nn.Dropout) and its augmented batches (the engine's sampling in f64 on the u8 pixels,
f32(v)/255), each keyed by the engine's optimiser step. Where DRAWS/kana-epoch-E.npy holds the
engine's weights after epoch E of the same run, it reports how far the two have drifted apart.

Prints exactly one line of JSON.
"""
import argparse
import copy
import json
import math
import os
import time

import torch
import torch.nn.functional as F

RECIPES = {
    'r5': dict(hidden=[128], optimizer='adam', lr=1e-3, batchSize=64, l2=0.0, epochs=5,
               earlyStopping=False, patience=20, restoreBest=False),
    'm3': dict(hidden=[512], optimizer='adam', lr=1e-3, batchSize=32, l2=1e-3, epochs=200,
               earlyStopping=True, patience=20, restoreBest=True),
    'm0': dict(hidden=[100, 80], optimizer='gd', lr=0.1, batchSize=None, l2=0.0, epochs=500,
               earlyStopping=False, patience=20, restoreBest=False),
    'modern': dict(hidden=[1024, 1024], optimizer='adamw', lr=2e-3, batchSize=128, l2=0.0, epochs=60,
                   earlyStopping=False, patience=20, restoreBest=False, dropout=0.3, labelSmoothing=0.1,
                   weightDecay=1e-2, schedule=dict(name='one-cycle', pctStart=0.3, divFactor=25.0, finalDivFactor=1e4),
                   augment=dict(rotate=12.0, scale=0.1, shear=0.15, shift=1.7)),
}


def affine_theta(theta, s, h, tx, ty, side):
    """affine_grid's matrices (B×2×3) for kana-native's transform (crates/kana-core/src/augment.rs).

    kana-native samples output pixel (x, y) at X = m00·qx + m01·qy + c, Y = m10·qx + m11·qy + c with
    qx = x − c − tx, qy = y − c − ty, c = (n − 1)/2, pixel centres at integer coordinates. With
    align_corners=False, affine_grid's normalised output coordinate is x_n = (x − c)/(n/2) and
    grid_sample reads input pixel g·(n/2) + c: both use the same pixel centres, so the matrix is
    kana-native's m with the shift folded into the last column, divided by n/2.
    """
    sin, cos = torch.sin(theta), torch.cos(theta)
    m00, m01, m10, m11 = (cos + h * sin) / s, (sin - h * cos) / s, -sin / s, cos / s
    half = side / 2.0
    return torch.stack([torch.stack([m00, m01, -(m00 * tx + m01 * ty) / half], 1),
                        torch.stack([m10, m11, -(m10 * tx + m11 * ty) / half], 1)], 1)


def warp(xb, mats, side):
    """xb (B×n², floats) resampled through the B affine maps: bilinear, zeros outside."""
    b = xb.shape[0]
    grid = F.affine_grid(mats.to(xb.dtype), (b, 1, side, side), align_corners=False)
    return F.grid_sample(xb.view(b, 1, side, side), grid, mode='bilinear', padding_mode='zeros',
                         align_corners=False).view(b, side * side)


def random_augment(xb, aug, side):
    """kana-native's parameter distributions, each uniform: θ in ±rotate°, s in 1 ± scale,
    shear h in ±shear, tx, ty in ±shift px (torch's global generator, seeded by --seed)."""
    u = torch.rand(xb.shape[0], 5) * 2 - 1
    mats = affine_theta(u[:, 0] * (aug['rotate'] * math.pi / 180), 1 + aug['scale'] * u[:, 1], aug['shear'] * u[:, 2],
                        aug['shift'] * u[:, 3], aug['shift'] * u[:, 4], side)
    return warp(xb, mats, side)


def augment_check(d):
    """The parity check run by `node bench/recipes.mjs --check-augment`: DIR holds images.npy (u8,
    B×n²), params.json (B × {theta, s, h, tx, ty}: what kana-native drew for them) and kana.npy (f32,
    B×n²: the engine's augmentBatch). Prints the largest differences of this file's transform
    (float64 and float32, the training path) from the engine's."""
    import numpy as np
    x8 = np.load(os.path.join(d, 'images.npy'))
    kana = torch.from_numpy(np.load(os.path.join(d, 'kana.npy')).astype(np.float64))
    with open(os.path.join(d, 'params.json')) as f:
        ps = json.load(f)
    side = int(round(math.sqrt(x8.shape[1])))
    col = lambda k: torch.tensor([p[k] for p in ps], dtype=torch.float64)
    mats = affine_theta(col('theta'), col('s'), col('h'), col('tx'), col('ty'), side)
    x = torch.from_numpy(x8.astype(np.float64) / 255.0)
    f64 = warp(x, mats, side)
    f32 = warp(x.float(), mats.float(), side).double()
    print(json.dumps({'images': int(x8.shape[0]), 'maxAbsF64': float((f64 - kana).abs().max()),
                      'maxAbsF32': float((f32 - kana).abs().max()), 'meanAbsChange': float((kana - x).abs().mean())}))


def linears(model):
    return [m for m in model if isinstance(m, torch.nn.Linear)]


def flat_params(model):
    """The parameters as one vector in kana-native's layout (getWeights): per layer W (in × out,
    row-major), then b."""
    out = []
    for lin in linears(model):
        out += [lin.weight.detach().t().reshape(-1), lin.bias.detach().reshape(-1)]
    return torch.cat(out)


def load_flat(model, flat):
    """Sets the parameters from a vector in kana-native's layout (float32, bit for bit)."""
    at = 0
    with torch.no_grad():
        for lin in linears(model):
            o, i = lin.weight.shape
            lin.weight.copy_(torch.from_numpy(flat[at:at + i * o].reshape(i, o).T.copy()))
            lin.bias.copy_(torch.from_numpy(flat[at + i * o:at + i * o + o].copy()))
            at += i * o + o
    assert at == flat.size, f'{flat.size} parameters given, the model has {at}'


def forward_masked(model, x, masks):
    """The model with kana-native's dropout: after each hidden ReLU, x · factor (scale or 0)."""
    h = 0
    for m in model:
        x = m(x)
        if masks is not None and isinstance(m, torch.nn.ReLU):
            x = x * masks[h]
            h += 1
    return x


class SameDraws:
    """kana-native's random draws for one run (bench/kana_draws.py), keyed by its optimiser step
    (`step`, advanced by the caller after every update): the permutation of each epoch from the
    engine's SplitMix64 state after the initialisation, the augmented batch and the dropout factors
    of each step."""

    def __init__(self, d, seed, sizes, dropout, aug):
        import kana_draws
        self.kd = kana_draws
        with open(os.path.join(d, 'draws.json')) as f:
            meta = json.load(f)
        assert meta['seed'] == seed, (meta['seed'], seed)
        self.seed, self.rng, self.step = seed, kana_draws.SplitMix64(int(meta['rngState'])), 0
        self.dropout, self.aug, self.widths = dropout, aug, sizes[1:-1]
        self.side = int(round(math.sqrt(sizes[0])))

    def order(self, n, batch):
        # the engine shuffles only when there is more than one batch (train.rs Trainer::epoch)
        return torch.tensor(self.rng.shuffle(list(range(n))) if batch < n else list(range(n)))

    def batch(self, x8, xf, idx):
        if self.aug:
            return torch.from_numpy(self.kd.augment(x8[idx.numpy()], self.seed, self.step, self.aug, self.side))
        return xf[idx]

    def masks(self, rows):
        if not self.dropout:
            return None
        return [torch.from_numpy(self.kd.dropout_factor(self.seed, self.step, l + 1, self.dropout, rows, w))
                for l, w in enumerate(self.widths)]


def build_model(sizes, dropout):
    """Linear + ReLU (+ nn.Dropout(dropout) when dropout > 0), He init, zero biases."""
    import torch.nn as nn
    layers = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        nn.init.kaiming_normal_(lin.weight, mode='fan_in', nonlinearity='relu')
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def make_optimizer(model, rec, lr=None):
    """The recipe's optimiser; decay (AdamW) or L2 on the weights only, as kana-native."""
    weights = [p for n, p in model.named_parameters() if n.endswith('weight')]
    biases = [p for n, p in model.named_parameters() if n.endswith('bias')]
    lr = rec['lr'] if lr is None else lr
    if rec['optimizer'] == 'adamw':
        groups = [{'params': weights, 'weight_decay': rec['weightDecay']}, {'params': biases, 'weight_decay': 0.0}]
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    groups = [{'params': weights, 'weight_decay': rec['l2']}, {'params': biases, 'weight_decay': 0.0}]
    if rec['optimizer'] == 'adam':
        return torch.optim.Adam(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    return torch.optim.SGD(groups, lr=lr, momentum=0.0)


def same_draws_epoch(model, opt, loss_fn, draws, x8, xf, y, batch, after_step=None):
    """One epoch with kana-native's draws: its permutation, its augmented batches and dropout."""
    n = xf.shape[0]
    order = draws.order(n, batch)
    for start in range(0, n, batch):
        idx = order[start:start + batch]
        xb = draws.batch(x8, xf, idx)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(forward_masked(model, xb, draws.masks(len(idx))), y[idx])
        loss.backward()
        opt.step()
        draws.step += 1
        if after_step is not None:
            after_step(draws.step)


def rel_diff(a, b):
    """‖a − b‖ / ‖b‖, in float64."""
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def load_part(d, part):
    import numpy as np
    x = np.load(os.path.join(d, f'{part}_images.npy'))
    y = np.load(os.path.join(d, f'{part}_labels.npy'))
    assert x.dtype == np.uint8 and x.ndim == 2 and x.shape[0] == y.shape[0], (part, x.dtype, x.shape, y.shape)
    return x, torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))


def draws_check(d, draws_dir, seed):
    """`--draws DRAWS` (recipes.mjs --same-draws, before training): the He initialisation re-derived
    here against the engine's (DRAWS/w0.npy) bit for bit, the generator's state after it against
    the engine's, and DRAWS/order-1.npy: the permutation of epoch 1 for the engine to replay."""
    import numpy as np
    import kana_draws as kd
    with open(os.path.join(draws_dir, 'draws.json')) as f:
        meta = json.load(f)
    assert meta['seed'] == seed
    sizes = meta['layers']
    w0 = np.load(os.path.join(draws_dir, 'w0.npy'))
    ws, state = kd.he_init(seed, sizes)
    mismatched, at, biases_zero = 0, 0, True
    for (a, b), w in zip(zip(sizes[:-1], sizes[1:]), ws):
        mismatched += int((w0[at:at + a * b].view(np.uint32) != w.reshape(-1).view(np.uint32)).sum())
        biases_zero = biases_zero and not w0[at + a * b:at + a * b + b].any()
        at += a * b + b
    n = np.load(os.path.join(d, 'train_images.npy')).shape[0]
    order = kd.SplitMix64(state).shuffle(list(range(n)))
    np.save(os.path.join(draws_dir, 'order-1.npy'), np.array(order, dtype=np.int64))
    print(json.dumps({'weights': int(at), 'initMismatched': mismatched, 'biasesZero': bool(biases_zero),
                      'rngStateAfterInit': str(state), 'engineRngState': meta['rngState']}))


# The levers of the modern recipe one at a time, and all together, for the streams check
# (None: the recipe's value). 'shifted' is the control: all levers, but every dropout mask and
# augmented batch taken from the next step's draws — what one wrong stream looks like.
LEVERS = {
    'plain': dict(dropout=0.0, labelSmoothing=0.0, augment=False),
    'dropout': dict(dropout=None, labelSmoothing=0.0, augment=False),
    'smoothing': dict(dropout=0.0, labelSmoothing=None, augment=False),
    'augment': dict(dropout=0.0, labelSmoothing=0.0, augment=True),
    'all': dict(dropout=None, labelSmoothing=None, augment=True),
    'shifted': dict(dropout=None, labelSmoothing=None, augment=True, engine='all', offset=1),
}
# The optimisers of the check: the recipe's AdamW at epoch 1's rate, and plain SGD at 0.1, whose
# update is the gradient itself (Adam's first steps are ≈ lr·sign(g), so the few gradient
# elements that float rounding puts on the other side of 0 — at a ReLU kink, say — move by 2·lr).
CHECK_OPTIMIZERS = ('adamw', 'sgd')
SGD_LR = 0.1
CHECK_STEPS = (1, 2, 5, 10)


def one_step_check(draws_dir, seed, rec, sizes, x8, xf, y, order, steps, offset=0):
    """Each step k of epoch 1 alone, from the same point: PyTorch loads the engine's weights after
    step k − 1 (SGD, all levers: DRAWS/engine-sgd-all-step-K.npy), takes step k with kana-native's
    draws for it (those of step k − 1 + offset: offset 1 is the control) and is compared with the
    engine's weights after step k, relative to the engine's change in that step. No chaos can
    build up in one step: what is left is rounding, and the odd unit that rounding puts on the
    other side of a ReLU kink."""
    import numpy as np
    batch = rec['batchSize']
    load = lambda k: np.load(os.path.join(draws_dir, f'engine-sgd-all-step-{k}.npy')) if k else np.load(os.path.join(draws_dir, 'w0.npy'))
    out, before = [], load(0)
    for k in range(1, steps + 1):
        after = load(k)
        model = build_model(sizes, 0)
        load_flat(model, before)
        opt = make_optimizer(model, dict(optimizer='sgd', lr=SGD_LR, l2=0.0))
        draws = SameDraws(draws_dir, seed, sizes, rec['dropout'], rec['augment'])
        draws.step = k - 1 + offset
        idx = torch.from_numpy(order[(k - 1) * batch:k * batch])
        xb = draws.batch(x8, xf, idx)
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.CrossEntropyLoss(label_smoothing=rec['labelSmoothing'])(forward_masked(model, xb, draws.masks(len(idx))), y[idx])
        loss.backward()
        opt.step()
        a, b = torch.from_numpy(after).double(), torch.from_numpy(before).double()
        out.append(float((flat_params(model).double() - a).norm() / (a - b).norm()))
        before = after
    v = sorted(out)
    return {'steps': len(out), 'median': v[len(v) // 2], 'max': v[-1], 'over1e-3': sum(x > 1e-3 for x in v), 'perStep': out}


def streams_check(d, draws_dir, seed, rec):
    """`--check-streams DRAWS` (recipes.mjs --same-draws, before training): epoch 1 from the
    engine's initial weights with kana-native's draws, for each set of levers in LEVERS and each
    optimiser in CHECK_OPTIMIZERS, against the engine's weights after the same epoch
    (DRAWS/engine-OPT-LEVER.npy; for AdamW with all levers also after the steps CHECK_STEPS:
    engine-adamw-all-step-K.npy), and the augmented batches of the epoch's first and last steps
    against the engine's augmentBatch (aug-step-K.npy). Weight differences are relative to the
    engine's change of the weights over the same steps: ‖W_torch − W_kana‖ / ‖W_kana − W0‖."""
    import numpy as np
    import kana_draws as kd
    with open(os.path.join(draws_dir, 'draws.json')) as f:
        meta = json.load(f)
    sizes, lr = meta['layers'], meta['lr']
    x8, xf, y = load_part(d, 'train')
    n, batch = xf.shape[0], rec['batchSize']
    w0 = np.load(os.path.join(draws_dir, 'w0.npy'))
    w0t = torch.from_numpy(w0).double()
    out = {'lr': lr, 'sgdLr': SGD_LR, 'augment': {}, 'levers': {}}
    order = np.load(os.path.join(draws_dir, 'order-1.npy'))
    for step in (0, (n - 1) // batch):
        idx = order[step * batch:(step + 1) * batch]
        mine = kd.augment(x8[idx], seed, step, rec['augment'], int(round(math.sqrt(sizes[0]))))
        eng = np.load(os.path.join(draws_dir, f'aug-step-{step}.npy')).reshape(mine.shape)
        out['augment'][str(step)] = {'rows': int(len(idx)), 'mismatched': int((mine.view(np.uint32) != eng.view(np.uint32)).sum()),
                                     'maxAbs': float(np.abs(mine.astype(np.float64) - eng).max())}
    engine = lambda name: torch.from_numpy(np.load(os.path.join(draws_dir, f'engine-{name}.npy')))
    vs_change = lambda mine, eng: float((mine.double() - eng.double()).norm() / (eng.double() - w0t).norm())
    for opt_name in CHECK_OPTIMIZERS:
        r = rec if opt_name == 'adamw' else dict(optimizer='sgd', lr=SGD_LR, l2=0.0)
        for name, lever in LEVERS.items():
            dropout = rec['dropout'] if lever['dropout'] is None else lever['dropout']
            smoothing = rec['labelSmoothing'] if lever['labelSmoothing'] is None else lever['labelSmoothing']
            model = build_model(sizes, 0)
            load_flat(model, w0)
            opt = make_optimizer(model, r, lr if opt_name == 'adamw' else SGD_LR)
            draws = SameDraws(draws_dir, seed, sizes, dropout, rec['augment'] if lever['augment'] else None)
            draws.step = lever.get('offset', 0)
            snaps = {}
            ref = f"{opt_name}-{lever.get('engine', name)}"
            if ref == 'adamw-all' and name == 'all':
                def after(k):
                    if k in CHECK_STEPS:
                        snaps[k] = flat_params(model).clone()
            else:
                after = None
            same_draws_epoch(model, opt, torch.nn.CrossEntropyLoss(label_smoothing=smoothing), draws, x8, xf, y, batch, after)
            mine, eng = flat_params(model), engine(ref)
            res = {'steps': draws.step - lever.get('offset', 0), 'relToChange': vs_change(mine, eng), 'relToWeights': rel_diff(mine, eng)}
            if snaps:
                res['relToChangeAtStep'] = {str(k): vs_change(v, engine(f'{ref}-step-{k}')) for k, v in snaps.items()}
            out['levers'][f'{opt_name}-{name}'] = res
    steps = (n + batch - 1) // batch
    out['oneStep'] = one_step_check(draws_dir, seed, rec, sizes, x8, xf, y, order, steps)
    out['oneStepShifted'] = one_step_check(draws_dir, seed, rec, sizes, x8, xf, y, order, steps, offset=1)
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--dir')
    ap.add_argument('--recipe', choices=sorted(RECIPES))
    ap.add_argument('--seed', type=int)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--check-augment', metavar='DIR')
    ap.add_argument('--same-draws', metavar='DRAWS')
    ap.add_argument('--draws', metavar='DRAWS')
    ap.add_argument('--check-streams', metavar='DRAWS')
    args = ap.parse_args()
    import numpy as np
    import torch.nn as nn
    if args.check_augment:
        return augment_check(args.check_augment)
    if args.draws or args.check_streams:
        if args.dir is None or args.seed is None:
            ap.error('--draws and --check-streams need --dir and --seed')
        torch.set_num_threads(args.threads)
        if args.draws:
            return draws_check(args.dir, args.draws, args.seed)
        return streams_check(args.dir, args.check_streams, args.seed, RECIPES[args.recipe or 'modern'])
    if args.dir is None or args.recipe is None or args.seed is None:
        ap.error('--dir, --recipe and --seed are required')
    rec = RECIPES[args.recipe]

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    xtr8, xtr, ytr = load_part(args.dir, 'train')  # xtr8: the u8 pixels kana-native's augmentation reads
    _, xva, yva = load_part(args.dir, 'validation')
    _, xte, yte = load_part(args.dir, 'test')
    classes = int(max(ytr.max(), yva.max(), yte.max())) + 1
    sizes = [xtr.shape[1], *rec['hidden'], classes]

    same = None
    if args.same_draws:
        # kana-native's initial weights and draws instead of torch's (the file comment)
        model = build_model(sizes, 0)
        w0 = np.load(os.path.join(args.same_draws, 'w0.npy'))
        load_flat(model, w0)
        assert torch.equal(flat_params(model), torch.from_numpy(w0)), 'the initial weights did not load bit for bit'
        same = SameDraws(args.same_draws, args.seed, sizes, rec.get('dropout', 0.0), rec.get('augment'))
        drift = []
    else:
        model = build_model(sizes, rec.get('dropout'))
    opt = make_optimizer(model, rec)
    sched = None
    if rec.get('schedule'):
        sc = rec['schedule']
        assert sc['name'] == 'one-cycle'
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=rec['lr'], total_steps=rec['epochs'], pct_start=sc['pctStart'], div_factor=sc['divFactor'],
            final_div_factor=sc['finalDivFactor'], anneal_strategy='cos', three_phase=False, cycle_momentum=False)
    loss_fn = nn.CrossEntropyLoss()
    train_loss_fn = nn.CrossEntropyLoss(label_smoothing=rec.get('labelSmoothing', 0.0))
    aug = rec.get('augment')
    side = int(round(math.sqrt(xtr.shape[1])))
    if aug:
        assert side * side == xtr.shape[1], 'augmentation needs square images'

    def evaluate(x, y):
        model.eval()
        with torch.no_grad():
            logits = model(x)
            return float(loss_fn(logits, y)), float((logits.argmax(1) == y).float().mean())

    n = xtr.shape[0]
    batch = n if rec['optimizer'] == 'gd' else min(rec['batchSize'], n)
    patience = rec['patience'] if rec['earlyStopping'] else math.inf
    best_loss, best_epoch, best_state, waited = math.inf, -1, None, 0
    epochs_run, stop_reason = 0, 'completed'
    lrs = []
    # the training loop's wall and CPU time (all threads): every epoch with its augmentation and
    # validation pass, not the loading before it nor the final evaluation after it
    train_started, cpu_started = time.perf_counter(), time.process_time()
    for epoch in range(rec['epochs']):
        model.train()
        lrs.append(opt.param_groups[0]['lr'])
        if same is not None:
            same_draws_epoch(model, opt, train_loss_fn, same, xtr8, xtr, ytr, batch)
        else:
            order = torch.randperm(n) if batch < n else torch.arange(n)
            for start in range(0, n, batch):
                idx = order[start:start + batch]
                xb = xtr[idx]
                if aug:
                    xb = random_augment(xb, aug, side)
                opt.zero_grad(set_to_none=True)
                loss = train_loss_fn(model(xb), ytr[idx])
                loss.backward()
                opt.step()
        if sched is not None and epoch + 1 < rec['epochs']:
            sched.step()
        epochs_run += 1
        if same is not None:
            # how far from the engine's weights after the same epoch of the same run (when given)
            f = os.path.join(args.same_draws, f'kana-epoch-{epochs_run}.npy')
            if os.path.exists(f):
                drift.append({'epoch': epochs_run, 'rel': rel_diff(flat_params(model), torch.from_numpy(np.load(f)))})
        val_loss, _ = evaluate(xva, yva)
        if math.isfinite(val_loss) and val_loss < best_loss:
            best_loss, best_epoch, waited = val_loss, epoch, 0
            if rec['restoreBest']:
                best_state = copy.deepcopy(model.state_dict())
        else:
            waited += 1
            if not math.isfinite(val_loss):
                stop_reason = 'diverged'
                break
            if waited >= patience:
                stop_reason = 'early-stopping'
                break
    train_seconds, train_cpu = time.perf_counter() - train_started, time.process_time() - cpu_started
    if rec['restoreBest'] and best_state is not None:
        model.load_state_dict(best_state)

    test_loss, test_acc = evaluate(xte, yte)
    val_loss, val_acc = evaluate(xva, yva)
    extra = {}
    if same is not None:
        extra = {'sameDraws': True, 'drift': drift, 'steps': same.step, 'rngStateAtEnd': str(same.rng.state)}
        f = os.path.join(args.same_draws, f'kana-epoch-{epochs_run}.npy')
        if os.path.exists(f):
            # the two final models' test predictions: the fraction of test images they classify alike
            kana = build_model(sizes, 0)
            load_flat(kana, np.load(f))
            with torch.no_grad():
                extra['testAgreement'] = float((kana(xte).argmax(1) == model(xte).argmax(1)).float().mean())
    print(json.dumps({
        'engine': 'pytorch', 'torch': torch.__version__, 'threads': torch.get_num_threads(),
        'recipe': args.recipe, 'seed': args.seed, 'layers': sizes,
        'samples': {'train': n, 'validation': int(xva.shape[0]), 'test': int(xte.shape[0])},
        'testAccuracy': test_acc, 'testLoss': test_loss, 'valAccuracy': val_acc, 'valLoss': val_loss,
        'epochs': epochs_run, 'bestEpoch': best_epoch + 1, 'stopReason': stop_reason,
        'seconds': time.perf_counter() - started, 'trainSeconds': train_seconds, 'trainCpuSeconds': train_cpu,
        'lrs': lrs, 'recipeSpec': rec,
        'env': {k: os.environ.get(k) for k in ('OPENBLAS_NUM_THREADS', 'OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE', 'OMP_NUM_THREADS')},
        **extra,
    }))


if __name__ == '__main__':
    main()
