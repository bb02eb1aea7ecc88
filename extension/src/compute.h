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

#include "forward.h"
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

/* Registers compute.c's part of loading and freeing models (model.h ModelLoadHooks, _PG_init). */
extern void compute_init(void);

/* ---- the forward step (forward.c's ForwardRun) ---- */

/*
 * The backend a run that begins now steps on: infer.compute; under 'auto'
 * webgpu when the host has a GPU that is not a CPU emulation, else wasm (an
 * owned model: onnx). forward_begin records it in the run; forward_step and
 * forward_logits dispatch on it, so callers (infer.c, predict.c, walk.c,
 * similar.c, ...) never name a backend.
 */
extern ComputeBackendKind compute_forward_backend(InferModel *m);

/*
 * A run on a host backend: gives it an id there and arranges for the
 * backend to free its KV cache when the run's memory context goes (run end,
 * transaction end, error).
 */
extern void compute_forward_begin(ForwardRun *run);

/*
 * One step of n tokens (prefill or decode) on the run's host backend: one
 * host call, which keeps the KV cache in the backend and returns the last
 * position's residual (run->last), logits (run->logits) and, when the run
 * asked, the captured FFN activations and residuals of every layer. Loads
 * the model's forward weights into the backend first when it lacks them.
 * false: the run is one 'auto' gave the GPU and the host declined its first
 * step (the GPU failed); the caller runs it on wasm.
 */
extern bool compute_forward_step(ForwardRun *run, const int32 *ids, int n);

/*
 * One step of each of `count` runs of one model on their host backend, in
 * one host call that the backend computes as one batched pass: runs[i]
 * takes n[i] tokens ids[i]. Each run ends as compute_forward_step would
 * leave it. The runs share the model and the backend and none is an 'auto'
 * run at its first step (forward_step_many checks).
 */
extern void compute_forward_steps(ForwardRun **runs, const int32 *const *ids, const int *n,
								  int count);

/*
 * What a host backend is told about a model's architecture with its forward
 * weights: float64 words, FS_FIXED_WORDS of them, then one per layer (1:
 * sliding-window attention). Keep in step with packages/compute/src/forward.ts
 * (ForwardSpecWord).
 */
#define FORWARD_SPEC_VERSION 1
typedef enum ForwardSpecWord
{
	FS_VERSION,
	FS_LAYERS,
	FS_HIDDEN,
	FS_VOCAB,
	FS_HEADS,
	FS_KV_HEADS,
	FS_HEAD_DIM,
	FS_INTERMEDIATE,
	FS_LAYERNORM,
	FS_NORM_OFFSET,
	FS_NORM_EPS,
	FS_LEARNED_POSITIONS,
	FS_ACTIVATION,
	FS_PLAIN_FFN,
	FS_TIED,
	FS_QK_NORM,
	FS_SANDWICH,
	FS_SLIDING_WINDOW,
	FS_ATTN_SCALE,
	FS_ATTN_SOFTCAP,
	FS_FINAL_SOFTCAP,
	FS_EMBED_SCALE,
	FS_FIXED_WORDS
} ForwardSpecWord;

/* ---- backend-owned models (InferModel.owned) ---- */

/*
 * Streams an owned model's gate rows and forward matrices from its source
 * (m->stream_part / m->read_part, set while it loads) into the onnx
 * backend, commits the gate pass, then hands over the forward pass's
 * vectors and embeddings from the heap and the architecture. Called at load
 * and again when the backend lost the model (model_with_source).
 */
extern void compute_owned_load(InferModel *m);

/* n x hidden float32 (palloc'd): column hits[i].feature of W_down of layer hits[i].layer. */
extern float *compute_owned_columns(InferModel *m, const GateHit *hits, int n);

/*
 * The logit lens's argmax (the token) of n normed residual vectors (n x
 * hidden) over an owned model's lm_head, which only the backend holds (not
 * tied to the embeddings). Soft-capping is monotonic: not applied.
 */
extern void compute_owned_lens(InferModel *m, const float *x, int n, int32 *tokens);

/* 55000: infer.compute names a backend that does not hold the owned model. */
pg_noreturn extern void compute_owned_refuse(InferModel *m);

/* 0A000: `what` needs a matrix only the backend holds and no backend operation computes it. */
pg_noreturn extern void compute_owned_unsupported(InferModel *m, const char *what);

#endif /* PG_INFER_COMPUTE_H */
