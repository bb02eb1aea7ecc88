/*
 * compute.h: the compute seam (compute.c). The whole-pass operations the
 * knowledge queries, signatures and index builds need, behind one call
 * each, so a caller never names a backend: the built-in WASM kernels
 * (gate_knn.c, the default and the reference) or a host backend reached
 * through host.c (the TypeScript half is packages/compute: ComputeBackend).
 *
 * infer.compute chooses: 'wasm', 'onnx', 'webgpu', or 'auto' ('wasm', but
 * batches go to a hardware GPU when the host has one: docs/webgpu.md).
 */
#ifndef PG_INFER_COMPUTE_H
#define PG_INFER_COMPUTE_H

#include "postgres.h"

#include "gate_knn.h"
#include "model.h"

typedef enum ComputeBackendKind
{
	COMPUTE_AUTO = 0,
	COMPUTE_WASM = 1,
	COMPUTE_ONNX = 2,
	COMPUTE_WEBGPU = 3
} ComputeBackendKind;

/*
 * 'auto' offers gate passes of at least this many queries to the host, which
 * serves them on a hardware GPU (webgpu) when it has one and declines
 * otherwise (then 'wasm'). Every pass today: a GPU reads a model's gate rows
 * at many times the WASM kernel's bandwidth (docs/webgpu.md).
 */
#define COMPUTE_AUTO_HOST_MIN_NQ 1

/* One batched gate pass with top-k. */
typedef struct GatePass
{
	const float *queries; /* nq x m->hidden, one after another */
	int nq;
	const bool *use_layer; /* per layer; NULL: every layer */
	int per_layer_k;       /* most hits per layer; <= 0: no per-layer limit */
	int k;                 /* most hits per query, over all layers */
	GateRank rank;
	bool positive_only; /* keep only scores > 0 */
} GatePass;

/*
 * Scores every query against the gate rows of the layers asked for and
 * fills out[i] (nq TopKs, initialised here with k and rank) with query i's
 * best hits, sorted best first (ties: layer, then feature ascending, as
 * topk_push breaks them). Every backend returns the same sets; scores may
 * differ in the last bits between backends (summation order).
 */
extern void compute_gate_topk(InferModel *m, const GatePass *pass, TopK *out);

/*
 * A model C no longer holds: host backends forget their copy. Called when a
 * retired model is freed (transaction end): never raises.
 */
extern void compute_model_freed(InferModel *m);

#endif /* PG_INFER_COMPUTE_H */
