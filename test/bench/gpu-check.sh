#!/usr/bin/env bash
# The GPU check: the WebGPU adapter and webgpu / wasm / onnx ratios at the
# Qwen2.5-0.5B shape, in one run (test/bench/gpu-check.bench.ts). Run it on
# a machine with a GPU after `npm ci && npm run build`; on Linux Dawn needs
# a Vulkan loader and driver (libvulkan1 + the vendor's ICD; lavapipe from
# mesa-vulkan-drivers is a CPU emulation: correct, not fast).
#
#   bash test/bench/gpu-check.sh [--walks 8] [--features 256] [--js-features 16] [--batches 16,64] [--reps 3] [--forward-runs 3]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if command -v vulkaninfo >/dev/null 2>&1; then
  vulkaninfo --summary 2>/dev/null | grep -E 'deviceName|driverName' || true
fi
node -e "import('webgpu').then(({create}) => create([]).requestAdapter()).then(a => { if (!a) { console.error('no WebGPU adapter: install a Vulkan driver (Linux), see docs/webgpu.md'); process.exit(1) } })"
date -u +'date: %Y-%m-%d %H:%M UTC'
exec npx tsx test/bench/gpu-check.bench.ts "$@" 2> >(grep --line-buffered -v "^Warning: max" >&2)
