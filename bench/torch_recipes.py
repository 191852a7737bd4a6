#!/usr/bin/python3
"""PyTorch side of the accuracy comparison in bench/recipes.mjs. Not a test.

Run with Debian's interpreter (PyTorch 1.13 is installed there, not for the pyenv python3 on PATH):

    /usr/bin/python3 bench/torch_recipes.py --dir TMP --recipe m3 --seed 1 [--threads 2]
    /usr/bin/python3 bench/torch_recipes.py --check-augment DIR     (see augment_check below)

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--dir')
    ap.add_argument('--recipe', choices=sorted(RECIPES))
    ap.add_argument('--seed', type=int)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--check-augment', metavar='DIR')
    args = ap.parse_args()
    import numpy as np
    import torch.nn as nn
    if args.check_augment:
        return augment_check(args.check_augment)
    if args.dir is None or args.recipe is None or args.seed is None:
        ap.error('--dir, --recipe and --seed are required')
    rec = RECIPES[args.recipe]

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    def load(part):
        x = np.load(os.path.join(args.dir, f'{part}_images.npy'))
        y = np.load(os.path.join(args.dir, f'{part}_labels.npy'))
        assert x.dtype == np.uint8 and x.ndim == 2 and x.shape[0] == y.shape[0], (part, x.dtype, x.shape, y.shape)
        return torch.from_numpy(x.astype(np.float32) / 255.0), torch.from_numpy(y.astype(np.int64))

    xtr, ytr = load('train')
    xva, yva = load('validation')
    xte, yte = load('test')
    classes = int(max(ytr.max(), yva.max(), yte.max())) + 1
    sizes = [xtr.shape[1], *rec['hidden'], classes]

    layers = []
    for i in range(len(sizes) - 1):
        lin = nn.Linear(sizes[i], sizes[i + 1])
        nn.init.kaiming_normal_(lin.weight, mode='fan_in', nonlinearity='relu')
        nn.init.zeros_(lin.bias)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if rec.get('dropout'):
                layers.append(nn.Dropout(rec['dropout']))
    model = nn.Sequential(*layers)

    weights = [p for n, p in model.named_parameters() if n.endswith('weight')]
    biases = [p for n, p in model.named_parameters() if n.endswith('bias')]
    if rec['optimizer'] == 'adamw':
        groups = [{'params': weights, 'weight_decay': rec['weightDecay']}, {'params': biases, 'weight_decay': 0.0}]
        opt = torch.optim.AdamW(groups, lr=rec['lr'], betas=(0.9, 0.999), eps=1e-8)
    else:
        groups = [{'params': weights, 'weight_decay': rec['l2']}, {'params': biases, 'weight_decay': 0.0}]
        if rec['optimizer'] == 'adam':
            opt = torch.optim.Adam(groups, lr=rec['lr'], betas=(0.9, 0.999), eps=1e-8)
        else:
            opt = torch.optim.SGD(groups, lr=rec['lr'], momentum=0.0)
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
    print(json.dumps({
        'engine': 'pytorch', 'torch': torch.__version__, 'threads': torch.get_num_threads(),
        'recipe': args.recipe, 'seed': args.seed, 'layers': sizes,
        'samples': {'train': n, 'validation': int(xva.shape[0]), 'test': int(xte.shape[0])},
        'testAccuracy': test_acc, 'testLoss': test_loss, 'valAccuracy': val_acc, 'valLoss': val_loss,
        'epochs': epochs_run, 'bestEpoch': best_epoch + 1, 'stopReason': stop_reason,
        'seconds': time.perf_counter() - started, 'trainSeconds': train_seconds, 'trainCpuSeconds': train_cpu,
        'lrs': lrs, 'recipeSpec': rec,
        'env': {k: os.environ.get(k) for k in ('OPENBLAS_NUM_THREADS', 'OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE', 'OMP_NUM_THREADS')},
    }))


if __name__ == '__main__':
    main()
