#!/usr/bin/env bash
# Times the DP-SGD step (models/dpsgd BenchmarkDPStep: all weights of the
# shipped model's shape, batch 32 x 64) on the pure-Go CPU backend and on a
# GPU through GoMLX's XLA backend with an installed CUDA PJRT plugin, and
# prints both for docs/BENCHMARKS.md. Run it on the GPU machine, from the
# repository root:
#
#   deploy/gpu/dp-step-bench.sh
#
# The plugin is found where jax's CUDA plugin installs it (python3's
# site-packages: jax_plugins/xla_cuda13/xla_cuda_plugin.so) or taken from
# $PJRT_PLUGIN. Nothing is downloaded (GOMLX_NO_AUTO_INSTALL=1). Recipe:
# ../shared/docs/verified.md, "GPU".
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOEXPERIMENT=simd

SP=$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null || true)
PLUGIN=${PJRT_PLUGIN:-$SP/jax_plugins/xla_cuda13/xla_cuda_plugin.so}
if [[ ! -f "$PLUGIN" ]]; then
  echo "dp-step-bench: no CUDA PJRT plugin at $PLUGIN (install jax[cuda13] or set PJRT_PLUGIN)" >&2
  exit 2
fi
export GOMLX_NO_AUTO_INSTALL=1 GOPJRT_CUDA_CHECKS=0
export XLA_FLAGS="--xla_gpu_cuda_data_dir=$SP/nvidia/cu13"

BIN=$(mktemp -d)/dpsgd.test
go test -c -tags xla -o "$BIN" ./models/dpsgd/

echo "== CPU (pure Go, $(nproc) cores)"
DPINSTRUCT_BACKEND=go "$BIN" -test.run '^$' -test.bench DPStep -test.benchtime 3x | grep Benchmark
echo "== GPU (xla:$PLUGIN)"
# The first step compiles (tens of seconds); the benchmark compiles outside
# its timing.
DPINSTRUCT_BACKEND="xla:$PLUGIN" "$BIN" -test.run '^$' -test.bench DPStep -test.benchtime 20x | grep Benchmark
