#!/usr/bin/python3
"""PyTorch peer for `npm run bench` (scripts/bench.mjs). Not a test.

Run with Debian's interpreter, where `apt-get install -y python3-torch libopenblas0-pthread` puts
PyTorch 1.13 (the pyenv python3 on PATH does not see it):

    /usr/bin/python3 bench/torch_mlp.py '<json spec>'

The spec (written by scripts/bench.mjs) names one workload and the shared synthetic data file:
    {"workload": "train"|"gd"|"infer"|"info", "data": path, "labels": path, "features": 784,
     "offset": first row, "n": rows, "layers": [...], "batch": 32, "threads": 2,
     "lr": 1e-3, "steps": optional step cap (gd: timed steps; infer: timed passes),
     "max_seconds": optional time cap for training, "warmup": warm-up steps (or passes),
     "warmup_seconds": optional time cap for the training warm-up, "seed": 1,
     optional "activation", "dropout", "batchNorm": the F1 layers (bench/layers.mjs),
     optional "augment": {rotate, scale, shear, shift} — every training batch augmented with
     affine_grid + grid_sample, kana-native's transform (torch_recipes.py random_augment)}
Workload "augment": that augmentation alone of `batch` rows, `steps` timed calls after `warmup`.
The data file is raw uint8, row-major N×784 (the same bytes kana-native reads); labels raw int32.
The model, optimiser and loop are what a user would write: nn.Sequential of Linear/ReLU, cross
entropy, torch.optim.Adam (or SGD for full-batch GD), batches sliced from a shuffled permutation.
Pixels are converted to float32 ÷255 once, before timing (as typical user code does), so the timed
part is pure training work — if anything this favours PyTorch, since kana-native converts u8 per batch.

Thread configuration comes from the environment set by the parent (OPENBLAS_NUM_THREADS,
OPENBLAS_CORETYPE, …) plus spec["threads"] → torch.set_num_threads (PyTorch 1.13 defaults to half
the cores, so it is always set explicitly).

Prints exactly one line starting with "RESULT " followed by JSON.
"""
import ctypes
import json
import os
import sys
import time


def blas_info():
    """Which BLAS the process actually loaded, and for OpenBLAS the kernel family it chose."""
    libs = set()
    try:
        with open('/proc/self/maps') as f:
            for line in f:
                p = line.split()[-1]
                if 'blas' in p or 'lapack' in p or 'mkl' in p:
                    libs.add(p)
    except OSError:
        pass
    info = {'libs': sorted(libs)}
    for lib in sorted(libs):
        if 'openblas' not in lib:
            continue
        try:
            h = ctypes.CDLL(lib)
            h.openblas_get_config.restype = ctypes.c_char_p
            h.openblas_get_corename.restype = ctypes.c_char_p
            info['openblas_config'] = h.openblas_get_config().decode()
            info['openblas_core'] = h.openblas_get_corename().decode()
            info['openblas_threads'] = h.openblas_get_num_threads()
        except (OSError, AttributeError):
            pass
        break
    if 'openblas_core' not in info:
        info['kind'] = 'reference/other BLAS' if libs else 'unknown'
    return info


def main():
    spec = json.loads(sys.argv[1])
    t_import = time.perf_counter()
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    t_import = time.perf_counter() - t_import

    torch.set_num_threads(int(spec.get('threads', 2)))
    torch.manual_seed(int(spec.get('seed', 1)))
    feats = int(spec.get('features', 784))
    off, n = int(spec['offset']), int(spec['n'])

    out = {
        'torch': torch.__version__,
        'numpy': np.__version__,
        'torch_threads': torch.get_num_threads(),
        'import_s': round(t_import, 3),
        'cpu_capability': next((l.split(':', 1)[1].strip() for l in torch.__config__.show().splitlines()
                                if 'CPU capability' in l), None),
        'env': {k: os.environ.get(k) for k in ('OPENBLAS_NUM_THREADS', 'OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE',
                                               'OMP_NUM_THREADS')},
    }
    if spec['workload'] == 'info':
        # BLAS is loaded lazily on the first GEMM: run one before asking
        torch.ones(64, 64) @ torch.ones(64, 64)
        out['blas'] = blas_info()
        print('RESULT ' + json.dumps(out), flush=True)
        return

    # --- the shared synthetic data: rows [off, off+n) of the raw u8 file, ÷255 once -------------
    X8 = np.fromfile(spec['data'], dtype=np.uint8, count=n * feats, offset=off * feats).reshape(n, feats)
    y = torch.from_numpy(np.fromfile(spec['labels'], dtype=np.int32, count=n, offset=off * 4).astype(np.int64))
    X = torch.from_numpy(X8).float().div_(255.0)
    del X8

    layers = spec['layers']
    # hidden layer: Linear, [BatchNorm1d], activation, [Dropout] — kana-native's order (README
    # "Conventions"); absent options = the plain ReLU MLP
    act = {'relu': nn.ReLU, 'leaky-relu': lambda: nn.LeakyReLU(0.01), 'silu': nn.SiLU, 'gelu': nn.GELU}[spec.get('activation') or 'relu']
    mods = []
    for i in range(len(layers) - 1):
        mods.append(nn.Linear(layers[i], layers[i + 1]))
        if i < len(layers) - 2:
            if spec.get('batchNorm'):
                mods.append(nn.BatchNorm1d(layers[i + 1]))
            mods.append(act())
            if spec.get('dropout'):
                mods.append(nn.Dropout(float(spec['dropout'])))
    model = nn.Sequential(*mods)

    wl = spec['workload']
    aug = spec.get('augment')
    if aug:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from torch_recipes import random_augment
        if aug.get('elastic'):
            raise SystemExit('elastic augmentation has no PyTorch peer here')
    side = int(round(feats ** 0.5))
    if wl == 'augment':
        xb = X[:int(spec['batch'])].contiguous()
        for _ in range(int(spec.get('warmup', 5))):
            random_augment(xb, aug, side)
        times, cpus = [], []
        check = 0.0
        for _ in range(int(spec.get('steps', 50))):
            t0, c0 = time.perf_counter(), time.process_time()
            out_b = random_augment(xb, aug, side)
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            check += float(out_b[0, 400])
        out.update(seconds=sorted(times)[(len(times) - 1) // 2], cpu_seconds=sorted(cpus)[(len(cpus) - 1) // 2],
                   samples=xb.shape[0], calls=len(times), checksum=check)
    elif wl == 'train':
        # mini-batch Adam; one epoch of n samples (or `steps` batches), after `warmup` untimed batches
        bs = int(spec['batch'])
        opt = torch.optim.Adam(model.parameters(), lr=float(spec.get('lr', 1e-3)))
        gen = torch.Generator().manual_seed(int(spec.get('seed', 1)))

        def step(idx):
            xb, yb = X[idx], y[idx]
            if aug:
                xb = random_augment(xb, aug, side)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss

        # untimed warm-up: `warmup` batches, or fewer if they take longer than warmup_seconds
        perm = torch.randperm(n, generator=gen)
        wcap = float(spec.get('warmup_seconds') or 0)
        tw = time.perf_counter()
        for s in range(int(spec.get('warmup', 0))):
            o = (s * bs) % max(1, n - bs + 1)
            step(perm[o:o + bs])
            if wcap and time.perf_counter() - tw > wcap:
                break
        perm = torch.randperm(n, generator=gen)
        nsteps = (n + bs - 1) // bs
        if spec.get('steps'):
            nsteps = min(nsteps, int(spec['steps']))
        # optional time cap (a slow configuration on a busy machine must not eat the bench's
        # budget): stop after max_seconds and report the samples actually done
        cap = float(spec.get('max_seconds') or 0)
        samples = 0
        loss_sum = 0.0
        done = 0
        t0, c0 = time.perf_counter(), time.process_time()
        for s in range(nsteps):
            idx = perm[s * bs:(s + 1) * bs]
            loss_sum += step(idx).item()  # .item() syncs, like reading a loss each step in user code
            samples += idx.numel()
            done += 1
            if cap and time.perf_counter() - t0 > cap:
                break
        dt = time.perf_counter() - t0
        # CPU seconds of all threads (OpenMP threads that spin while waiting count too)
        out.update(seconds=dt, cpu_seconds=time.process_time() - c0, samples=samples, steps=done, capped=done < nsteps, loss=loss_sum / done)
    elif wl == 'gd':
        # full-batch gradient descent: each step is forward+backward over all n samples
        opt = torch.optim.SGD(model.parameters(), lr=float(spec.get('lr', 0.1)))

        def step():
            loss = F.cross_entropy(model(X), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.item()

        for _ in range(int(spec.get('warmup', 1))):
            step()
        times, cpus = [], []
        for _ in range(int(spec.get('steps', 3))):
            t0, c0 = time.perf_counter(), time.process_time()
            loss = step()
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        # one step's time (the median of `steps`), samples = n per step
        out.update(seconds=sorted(times)[(len(times) - 1) // 2], step_times=times, cpu_seconds=sorted(cpus)[(len(cpus) - 1) // 2],
                   samples=n, steps=1, loss=loss)
    elif wl == 'infer':
        # predict_proba over the whole set in one call, as user code does; `steps` timed passes,
        # the median is reported
        model.eval()
        times, cpus = [], []
        with torch.no_grad():
            for _ in range(int(spec.get('warmup', 1))):
                F.softmax(model(X[:1024]), dim=1)
            for _ in range(int(spec.get('steps', 3))):
                t0, c0 = time.perf_counter(), time.process_time()
                p = F.softmax(model(X), dim=1)
                times.append(time.perf_counter() - t0)
                cpus.append(time.process_time() - c0)
        out.update(seconds=sorted(times)[(len(times) - 1) // 2], pass_times=times, cpu_seconds=sorted(cpus)[(len(cpus) - 1) // 2], samples=n,
                   checksum=float(p[:, 0].sum()))
    else:
        raise SystemExit('unknown workload ' + wl)
    out['blas'] = blas_info()
    print('RESULT ' + json.dumps(out), flush=True)


if __name__ == '__main__':
    main()
