#!/usr/bin/python3
"""PyTorch side of the accuracy comparison in bench/recipes.mjs. Not a test.

Run with Debian's interpreter (PyTorch 1.13 is installed there, not for the pyenv python3 on PATH):

    /usr/bin/python3 bench/torch_recipes.py --dir TMP --recipe m3 --seed 1 [--threads 2]

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

Prints exactly one line of JSON.
"""
import argparse
import copy
import json
import math
import os
import time

RECIPES = {
    'r5': dict(hidden=[128], optimizer='adam', lr=1e-3, batchSize=64, l2=0.0, epochs=5,
               earlyStopping=False, patience=20, restoreBest=False),
    'm3': dict(hidden=[512], optimizer='adam', lr=1e-3, batchSize=32, l2=1e-3, epochs=200,
               earlyStopping=True, patience=20, restoreBest=True),
    'm0': dict(hidden=[100, 80], optimizer='gd', lr=0.1, batchSize=None, l2=0.0, epochs=500,
               earlyStopping=False, patience=20, restoreBest=False),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--dir', required=True)
    ap.add_argument('--recipe', required=True, choices=sorted(RECIPES))
    ap.add_argument('--seed', type=int, required=True)
    ap.add_argument('--threads', type=int, default=2)
    args = ap.parse_args()
    rec = RECIPES[args.recipe]

    import numpy as np
    import torch
    import torch.nn as nn

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
    model = nn.Sequential(*layers)

    weights = [p for n, p in model.named_parameters() if n.endswith('weight')]
    biases = [p for n, p in model.named_parameters() if n.endswith('bias')]
    groups = [{'params': weights, 'weight_decay': rec['l2']}, {'params': biases, 'weight_decay': 0.0}]
    if rec['optimizer'] == 'adam':
        opt = torch.optim.Adam(groups, lr=rec['lr'], betas=(0.9, 0.999), eps=1e-8)
    else:
        opt = torch.optim.SGD(groups, lr=rec['lr'], momentum=0.0)
    loss_fn = nn.CrossEntropyLoss()

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
    for epoch in range(rec['epochs']):
        model.train()
        order = torch.randperm(n) if batch < n else torch.arange(n)
        for start in range(0, n, batch):
            idx = order[start:start + batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
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
        'seconds': time.perf_counter() - started,
    }))


if __name__ == '__main__':
    main()
