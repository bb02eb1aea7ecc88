/*
 * forward.h: the transformer forward pass over a model loaded at extract
 * level inference (forward.c), and the inference weights it reads.
 *
 * One ForwardModel per loaded model holds the architecture (from the
 * host's "config" part) and pointers into the weights loaded through the
 * host hook host_model_read(name, "weight:<key>", ...). Matrices stay in
 * the vindex's storage dtype (f16 halves the memory; the kernels widen in
 * registers); vectors (norms, biases) are widened to f32 at load.
 */
#ifndef PG_INFER_FORWARD_H
#define PG_INFER_FORWARD_H

#include "postgres.h"

#include "gate_knn.h"

struct InferModel;

/*
 * The architecture words the host returns for part "config": float64
 * values (integers are exact), FC_FIXED_WORDS of them, then one per layer
 * (1 when the layer uses sliding-window attention). Keep in step with
 * packages/pglite-infer/src/host/models.ts (encodeForwardConfig).
 */
#define FORWARD_CONFIG_VERSION 1
typedef enum ForwardConfigWord
{
	FC_VERSION,
	FC_HEADS,
	FC_KV_HEADS,
	FC_HEAD_DIM,
	FC_INTERMEDIATE,
	FC_MAX_POSITIONS, /* 0: unknown */
	FC_LAYERNORM,     /* 1: LayerNorm with bias (GPT-2), 0: RMSNorm */
	FC_NORM_OFFSET,   /* Gemma's (1 + w) */
	FC_NORM_EPS,
	FC_LEARNED_POSITIONS, /* GPT-2's wpe instead of RoPE */
	FC_ROPE_THETA,
	FC_ROPE_LOCAL_THETA, /* Gemma 3's sliding layers; 0: none */
	FC_ROPE_SCALING,     /* RopeScaling */
	FC_ROPE_FACTOR,
	FC_ROPE_LOW_FREQ,
	FC_ROPE_HIGH_FREQ,
	FC_ROPE_ORIGINAL_MAX,
	FC_ACTIVATION,            /* Activation */
	FC_PLAIN_FFN,             /* GPT-2: act(c_fc x) without an up projection */
	FC_TIED,                  /* lm_head = embeddings */
	FC_QKV_BIAS,              /* q/k/v biases (Qwen2, GPT-2) */
	FC_O_BIAS,                /* output projection bias */
	FC_MLP_BIAS,              /* gate/up/down biases */
	FC_QK_NORM,               /* per-head RMSNorm of q and k (Qwen3, Gemma 3) */
	FC_SANDWICH,              /* Gemma's norms after attention and around the MLP */
	FC_SLIDING_WINDOW,        /* 0: none */
	FC_QUERY_PRE_ATTN_SCALAR, /* 0: head_dim */
	FC_ATTN_SOFTCAP,          /* 0: none */
	FC_FINAL_SOFTCAP,         /* 0: none */
	FC_EOS,                   /* -1: none */
	FC_FIXED_WORDS
} ForwardConfigWord;

typedef enum RopeScaling
{
	ROPE_SCALING_NONE = 0,
	ROPE_SCALING_LINEAR = 1,
	ROPE_SCALING_LLAMA3 = 2,
	ROPE_SCALING_UNSUPPORTED = 99
} RopeScaling;

typedef enum Activation
{
	ACT_SILU = 0,
	ACT_GELU_TANH = 1, /* gelu_pytorch_tanh, gelu_new */
	ACT_GELU = 2,      /* exact (erf) */
	ACT_UNSUPPORTED = 99
} Activation;

/* A weight matrix [rows x cols]: gate_knn.c's GateMatrix (cols = hidden). */
typedef GateMatrix Matrix;

typedef struct LayerWeights
{
	Matrix q, k, v, o;
	const float *q_bias, *k_bias, *v_bias, *o_bias;
	const float *q_norm, *k_norm;
	Matrix gate, up, down;
	const float *gate_bias, *up_bias, *down_bias;
	const float *attn_norm, *attn_norm_bias; /* before attention */
	const float *post_attn_norm;             /* Gemma: on the attention output */
	const float *ffn_norm, *ffn_norm_bias;   /* before the MLP */
	const float *post_ffn_norm;              /* Gemma: on the MLP output */
	bool sliding;
} LayerWeights;

typedef struct ForwardModel
{
	int heads, kv_heads, head_dim, intermediate, max_positions;
	bool layernorm, learned_positions, plain_ffn, tied;
	bool qkv_bias, o_bias, mlp_bias, qk_norm, sandwich;
	float norm_offset, norm_eps;
	double rope_theta, rope_local_theta;
	RopeScaling rope_scaling;
	double rope_factor, rope_low_freq, rope_high_freq, rope_original_max;
	Activation activation;
	int sliding_window;
	float attn_scale;
	float attn_softcap, final_softcap;
	int eos;

	LayerWeights *layer;
	const float *final_norm, *final_norm_bias;
	Matrix embed, lm_head, positions;
	float *inv_freq;       /* head_dim / 2: global RoPE (with scaling) */
	float *inv_freq_local; /* head_dim / 2: sliding layers with their own base */
	int32 *feature_token;  /* [layers][intermediate][2 signs]: write tokens, -1 unknown */

	/* the weights to request from the host, filled by forward_plan() */
	int nparts;
	struct WeightPart *parts;
} ForwardModel;

/*
 * Registers forward.c's part of loading a model (model.h ModelLoadHooks,
 * _PG_init): at level inference or all, the architecture is read from the
 * host and the weights planned (their heap bytes count against
 * infer.max_memory before anything is allocated), then loaded once the gate
 * and embeddings are in. The ForwardModel lives in m->cxt.
 */
extern void forward_init(void);

/* The vindex weight key ("layers.3.mlp.down_proj.weight") a planned matrix is read from, or NULL.
 */
extern const char *forward_part_key(const struct InferModel *m, const Matrix *w);

/*
 * Raises 55000 unless the model was registered with its inference weights;
 * `what` names the caller in the message.
 */
extern ForwardModel *forward_require(struct InferModel *m, const char *what);

/* What a run records at the last position of each step, when asked. */
typedef struct ForwardCapture
{
	float *act;   /* [layers x intermediate]: the input of down_proj */
	float *resid; /* [layers x hidden]: the residual stream after each layer */
} ForwardCapture;

/*
 * A sequence being run: its KV cache and the last position's state. The
 * backend (compute.h: infer.compute when the run began) runs its steps:
 * 'wasm' here, with the KV cache in kcache/vcache; a host backend in its
 * worker, which keeps the KV cache under host_run and answers each step
 * with the last position's residual, logits and captures (compute.c).
 */
typedef struct ForwardRun
{
	struct InferModel *m;
	ForwardModel *fm;
	int capacity;           /* positions the cache holds */
	int n;                  /* positions done */
	float *kcache, *vcache; /* [layers][capacity][kv_heads * head_dim]; wasm only */
	float *last;            /* hidden: residual stream at the last position */
	ForwardCapture capture;
	int backend;   /* ComputeBackendKind serving the steps */
	int host_run;  /* host backend: the run's id there */
	float *logits; /* host backend: vocab logits of `last`, from the last step */
	bool have_logits;
	bool auto_host; /* 'auto' chose the host backend: a failed first step falls back to wasm */
} ForwardRun;

/*
 * Starts a run with room for `capacity` positions. Checks the model's
 * context and infer.max_memory (KV cache + activations) for a step of
 * `max_step` tokens, raising 54000 with both numbers when either is
 * exceeded. capture_act / capture_resid ask for per-layer captures.
 */
extern ForwardRun *forward_begin(struct InferModel *m, int capacity, int max_step, bool capture_act,
								 bool capture_resid);

/* Runs `n` more tokens through the model. */
extern void forward_step(ForwardRun *run, const int32 *ids, int n);

/*
 * Steps `count` runs of one model, runs[i] taking n[i] more tokens ids[i]:
 * what forward_step does to each in turn. Runs on a host backend go to it in
 * one call, computed there as one batched pass (the weights read once for
 * the batch instead of once per run); the built-in pass steps them one by
 * one. Callers with many independent texts (signatures, the vocabulary
 * sample of similar.c) step them in lockstep through this.
 */
extern void forward_step_many(ForwardRun **runs, const int32 *const *ids, const int *n, int count);

/*
 * Logits (vocab) of a residual vector: final norm, lm_head, soft-capping. For
 * run->last on a host backend, the logits its last step returned.
 */
extern void forward_logits(ForwardRun *run, const float *resid, float *logits);

/*
 * The argmax token of the logit lens (final norm, lm_head) of each of n
 * residual vectors (n x hidden): in C, or on the backend that owns the
 * model's lm_head.
 */
extern void forward_lens_tokens(struct InferModel *m, const float *resid, int n, int32 *tokens);

/*
 * The write token of each hit's feature (hit.score's sign picks the
 * direction): the logit lens of +-W_down[:, feature]. Cached per model.
 */
extern void forward_feature_tokens(struct InferModel *m, const GateHit *hits, int n, int32 *tokens);

/*
 * The token ids of a prompt under the model's tokenizer with the special
 * tokens its post-processor adds; errors for empty or token-less text.
 */
extern int32 *forward_tokens(struct InferModel *m, text *prompt, int *n);

#endif /* PG_INFER_FORWARD_H */
