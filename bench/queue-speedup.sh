#!/usr/bin/env bash
# The search on a job queue against one process (README "Several machines"): a random search of
# 4 trials × 8 epochs of [784,512,10], batch 32, on the 8,000 KMNIST images, run (a) in one process, one trial at a time × 2 threads,
# (b) in one process, two trials at a time × 1 thread (the default), (c) as jobs on a local Redis
# served by 2 worker processes × 1 thread. Prints each run's search seconds (experiment.json
# timings.search). Needs redis-server and a build (npm run build). Loopback only; stops what it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${KANA_BENCH_DATA:-../shared/data/kmnist}
TMP=$(mktemp -d)
PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
redis-server --port "$PORT" --bind 127.0.0.1 --dir "$TMP" --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
REDIS=$!
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; kill "$REDIS" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$TMP"; }
trap cleanup EXIT
sleep 1
cat >"$TMP/exp.json" <<JSON
{ "seed": 1, "threads": 2, "models": ["M1"], "data": { "images": "$(realpath "$DATA")/X_images.npy", "labels": "$(realpath "$DATA")/y_images.npy" },
  "search": { "mode": "random", "trials": 4, "epochs": 8, "halving": false,
    "space": { "optimizer": ["adam"], "hidden": [[512]], "batchSize": [32], "schedule": ["constant"], "l2": [0.0001], "patience": [10] } } }
JSON
search() { node -e "console.log(require('$1/experiment.json').timings.search.toFixed(1))"; }
node bin/kana-native.js experiment --config "$TMP/exp.json" --out "$TMP/a" --no-report --quiet --concurrency 1 --trial-threads 2
echo "1 process, 1 trial at a time x 2 threads: search $(search "$TMP/a") s"
node bin/kana-native.js experiment --config "$TMP/exp.json" --out "$TMP/b" --no-report --quiet --concurrency 2 --trial-threads 1
echo "1 process, 2 trials at a time x 1 thread: search $(search "$TMP/b") s"
for i in 1 2; do node bin/kana-native.js worker --queue "redis://127.0.0.1:$PORT" --quiet & PIDS+=($!); done
sleep 2
node bin/kana-native.js experiment --config "$TMP/exp.json" --out "$TMP/c" --no-report --quiet --concurrency 2 --trial-threads 1 --queue "redis://127.0.0.1:$PORT"
echo "2 workers x 1 thread on the queue:       search $(search "$TMP/c") s"
node -e "
const { loadModel } = require('./dist/output/model-file.js')
Promise.all(['a', 'b', 'c'].map((k) => loadModel('$TMP/' + k + '/models/M1/model.safetensors'))).then((ms) => {
  const same = (x, y) => x.weights.every((w, i) => Buffer.compare(Buffer.from(w.buffer), Buffer.from(y.weights[i].buffer)) === 0)
  console.log('M1 weights identical: (a) = (c) ' + same(ms[0], ms[2]) + ', (b) = (c) ' + same(ms[1], ms[2]))
})"
