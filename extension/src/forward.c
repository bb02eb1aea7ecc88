/*
 * forward.c: the forward pass of a decoder-only transformer, in C, over the
 * inference weights of a vindex (docs/forward-pass.md).
 *
 * Read top to bottom:
 *   1. loading: the architecture from the host, the weights to request
 *   2. kernels: matmul (WASM SIMD, f16 widened in registers), norms, RoPE,
 *      activations
 *   3. a run: embeddings, then per layer attention (with a KV cache) and the
 *      MLP, then the final norm and lm_head
 *
 * Families differ only in switches read from the config: RMSNorm or
 * LayerNorm (+ bias), Gemma's (1 + w) norm weights, sandwich norms and
 * embedding scale, q/k/v biases (Qwen2, GPT-2), per-head q/k norms (Qwen3,
 * Gemma 3), RoPE (with linear or llama3 scaling, a local base for Gemma 3's
 * sliding layers) or learned positions (GPT-2), grouped-query attention,
 * sliding windows, soft-capping (Gemma 2), gated (SwiGLU/GeGLU) or plain
 * (GPT-2) MLPs, tied or separate lm_head.
 *
 * Everything is float32 like the HuggingFace reference, except reductions
 * that decide precision (norm sums, softmax), which use double. libc's
 * float functions (expf, ...) are not exported by PGlite: double exp/tanh/
 * sqrt/pow are.
 */
#include "pg_infer.h"

#include "deadline.h"

#include <math.h>

#include "miscadmin.h"
#include "utils/memutils.h"
#include "varatt.h"

#include "compute.h"
#include "forward.h"
#include "guc.h"
#include "stats.h"
#include "host.h"
#include "model.h"

/* ---- 1. loading ---- */

typedef struct WeightPart
{
	char key[96];
	size_t elems;
	Matrix *matrix;       /* a matrix kept in storage dtype, or */
	const float **vector; /* a vector widened to f32 */
} WeightPart;

static void
plan_part(ForwardModel *fm, const char *key, size_t elems, Matrix *matrix, const float **vector)
{
	WeightPart *p = &fm->parts[fm->nparts++];

	snprintf(p->key, sizeof(p->key), "%s", key);
	p->elems = elems;
	p->matrix = matrix;
	p->vector = vector;
}

static void
plan_matrix(ForwardModel *fm, GateDtype dtype, const char *key, Matrix *dst, int rows, int cols)
{
	dst->dtype = dtype;
	dst->rows = rows;
	dst->hidden = cols;
	plan_part(fm, key, (size_t) rows * cols, dst, NULL);
}

static void
plan_vector(ForwardModel *fm, const char *key, const float **dst, int n)
{
	plan_part(fm, key, n, NULL, dst);
}

/* A config word as an int; -1 when it is not a finite number in int range. */
static int
word_int(double v)
{
	return isfinite(v) && v >= PG_INT32_MIN && v <= PG_INT32_MAX ? (int) v : -1;
}

static void
bad_config(const InferModel *m, const char *what)
{
	ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
					errmsg("model \"%s\" has an invalid architecture: %s", m->name, what),
					errhint("Re-extract the vindex from its checkpoint.")));
}

/*
 * What the kernels below take for granted, checked once at load: a config
 * that disagrees with the layout the family's weights are planned in (GPT-2's
 * fused attention, learned positions, plain MLP) would send them outside
 * their buffers. The host validates the same rules; pages of a model index
 * come here without passing it.
 */
static void
check_architecture(const InferModel *m, const ForwardModel *fm)
{
	bool gpt2 = strcmp(m->family, "gpt2") == 0;

	if (fm->learned_positions != gpt2 || fm->plain_ffn != gpt2 || fm->layernorm != gpt2)
		bad_config(m, gpt2 ? "gpt2 needs learned positions, a plain MLP and LayerNorm"
						   : "only gpt2 has learned positions, a plain MLP and LayerNorm");
	if (gpt2 && fm->qk_norm)
		bad_config(m, "gpt2 has no qk norms");
	/* Gemma 2/3 norm around the MLP too; a model without those weights would read none */
	if (fm->sandwich != (strncmp(m->family, "gemma", 5) == 0))
		bad_config(m, "only gemma2 and gemma3 have sandwich norms");
	if (gpt2 && (fm->heads * fm->head_dim != m->hidden || fm->kv_heads != fm->heads ||
				 fm->max_positions <= 0))
		bad_config(m, "gpt2 needs heads x head_dim = hidden, no grouped kv heads, and a "
					  "position table (max_position_embeddings)");
	if (fm->heads > 4096 || fm->head_dim > 4096 || fm->max_positions < 0 ||
		fm->max_positions > (1 << 24) || fm->sliding_window < 0)
		bad_config(m, "a size is out of range");
	if (!(fm->norm_eps > 0 && fm->norm_eps < 1))
		bad_config(m, "norm_eps must be in (0, 1)");
	if (fm->norm_offset != 0 && fm->norm_offset != 1)
		bad_config(m, "norm_weight_offset must be 0 or 1");
	if (!gpt2 && !(fm->rope_theta >= 1 && fm->rope_theta <= 1e12))
		bad_config(m, "rope_base must be in 1..1e12");
	if (!(fm->rope_local_theta == 0 ||
		  (fm->rope_local_theta >= 1 && fm->rope_local_theta <= 1e12)) ||
		!(fm->attn_scale > 0 && isfinite(fm->attn_scale)) || !(fm->attn_softcap >= 0) ||
		!(fm->final_softcap >= 0) || !isfinite(fm->attn_softcap) || !isfinite(fm->final_softcap))
		bad_config(m, "a rope base, attention scale or soft-cap is negative or not finite");
	if (fm->rope_scaling != ROPE_SCALING_NONE &&
		!(fm->rope_factor >= 1 && fm->rope_factor <= 1e4 && fm->rope_low_freq > 0 &&
		  fm->rope_high_freq > fm->rope_low_freq && fm->rope_high_freq <= 1e4 &&
		  fm->rope_original_max >= 1 && fm->rope_original_max <= (1 << 24)))
		bad_config(m, "rope_scaling's factors are out of range");
	if (fm->eos >= m->vocab)
		bad_config(m, "eos_token_id is outside the vocabulary");
}

/* The architecture words (forward.h); checks what this pass can run. */
static void
read_config(InferModel *m, ForwardModel *fm)
{
	int nwords = FC_FIXED_WORDS + m->layers;
	double *w = palloc(sizeof(double) * nwords);

	m->read_part(m->read_state, m->name, "config", 0, w, sizeof(double) * nwords);
	if (word_int(w[FC_VERSION]) != FORWARD_CONFIG_VERSION)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("pg_infer host speaks forward config version %d, expected %d",
							   word_int(w[FC_VERSION]), FORWARD_CONFIG_VERSION)));
	fm->heads = word_int(w[FC_HEADS]);
	fm->kv_heads = word_int(w[FC_KV_HEADS]);
	fm->head_dim = word_int(w[FC_HEAD_DIM]);
	fm->intermediate = word_int(w[FC_INTERMEDIATE]);
	fm->max_positions = word_int(w[FC_MAX_POSITIONS]);
	fm->layernorm = w[FC_LAYERNORM] != 0;
	fm->norm_offset = (float) w[FC_NORM_OFFSET];
	fm->norm_eps = (float) w[FC_NORM_EPS];
	fm->learned_positions = w[FC_LEARNED_POSITIONS] != 0;
	fm->rope_theta = w[FC_ROPE_THETA];
	fm->rope_local_theta = w[FC_ROPE_LOCAL_THETA];
	fm->rope_scaling = (RopeScaling) word_int(w[FC_ROPE_SCALING]);
	fm->rope_factor = w[FC_ROPE_FACTOR];
	fm->rope_low_freq = w[FC_ROPE_LOW_FREQ];
	fm->rope_high_freq = w[FC_ROPE_HIGH_FREQ];
	fm->rope_original_max = w[FC_ROPE_ORIGINAL_MAX];
	fm->activation = (Activation) word_int(w[FC_ACTIVATION]);
	fm->plain_ffn = w[FC_PLAIN_FFN] != 0;
	fm->tied = w[FC_TIED] != 0;
	fm->qkv_bias = w[FC_QKV_BIAS] != 0;
	fm->o_bias = w[FC_O_BIAS] != 0;
	fm->mlp_bias = w[FC_MLP_BIAS] != 0;
	fm->qk_norm = w[FC_QK_NORM] != 0;
	fm->sandwich = w[FC_SANDWICH] != 0;
	fm->sliding_window = word_int(w[FC_SLIDING_WINDOW]);
	fm->attn_scale =
		(float) (1.0 / sqrt(w[FC_QUERY_PRE_ATTN_SCALAR] > 0 ? w[FC_QUERY_PRE_ATTN_SCALAR]
															: (double) fm->head_dim));
	fm->attn_softcap = (float) w[FC_ATTN_SOFTCAP];
	fm->final_softcap = (float) w[FC_FINAL_SOFTCAP];
	fm->eos = word_int(w[FC_EOS]);
	/* anything else the host may send is "unsupported", never an out-of-range enum */
	if (fm->rope_scaling != ROPE_SCALING_NONE && fm->rope_scaling != ROPE_SCALING_LINEAR &&
		fm->rope_scaling != ROPE_SCALING_LLAMA3)
		fm->rope_scaling = ROPE_SCALING_UNSUPPORTED;
	if (fm->activation != ACT_SILU && fm->activation != ACT_GELU_TANH && fm->activation != ACT_GELU)
		fm->activation = ACT_UNSUPPORTED;
	fm->layer = MemoryContextAllocZero(m->cxt, sizeof(LayerWeights) * m->layers);
	for (int l = 0; l < m->layers; l++)
		fm->layer[l].sliding = w[FC_FIXED_WORDS + l] != 0;

	if (fm->heads <= 0 || fm->kv_heads <= 0 || fm->heads % fm->kv_heads != 0 || fm->head_dim <= 0 ||
		fm->head_dim % 2 != 0 || fm->intermediate <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\" has an invalid attention shape (%d heads, %d kv heads, "
						"head_dim %d)",
						m->name, fm->heads, fm->kv_heads, fm->head_dim)));
	check_architecture(m, fm);
	for (int l = 0; l < m->layers; l++)
		if (m->features[l] != fm->intermediate)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
							errmsg("model \"%s\": layer %d has %d features, the config says %d",
								   m->name, l, m->features[l], fm->intermediate)));
	pfree(w);
}

/* inv_freq[i] = theta^(-2i/d), then the config's scaling (HF's rope_init_fn). */
static float *
rope_frequencies(InferModel *m, const ForwardModel *fm, double theta, bool scaled)
{
	int half = fm->head_dim / 2;
	float *f = MemoryContextAlloc(m->cxt, sizeof(float) * half);

	for (int i = 0; i < half; i++)
	{
		double inv = 1.0 / pow(theta, (2.0 * i) / fm->head_dim);

		if (scaled && fm->rope_scaling == ROPE_SCALING_LINEAR)
			inv /= fm->rope_factor;
		else if (scaled && fm->rope_scaling == ROPE_SCALING_LLAMA3)
		{
			/* long wavelengths slowed by factor, short kept, a smooth blend between */
			double wavelen = 2 * M_PI / inv;
			double low_wavelen = fm->rope_original_max / fm->rope_low_freq;
			double high_wavelen = fm->rope_original_max / fm->rope_high_freq;

			if (wavelen > low_wavelen)
				inv /= fm->rope_factor;
			else if (wavelen >= high_wavelen)
			{
				double smooth = (fm->rope_original_max / wavelen - fm->rope_low_freq) /
								(fm->rope_high_freq - fm->rope_low_freq);

				inv = (1 - smooth) * inv / fm->rope_factor + smooth * inv;
			}
		}
		f[i] = (float) inv;
	}
	return f;
}

static void
plan_decoder_layer(InferModel *m, ForwardModel *fm, int l)
{
	LayerWeights *w = &fm->layer[l];
	GateDtype dt = m->gate_dtype;
	int H = m->hidden, I = fm->intermediate;
	int qdim = fm->heads * fm->head_dim, kvdim = fm->kv_heads * fm->head_dim;
	char key[96];

#define KEY(fmt) (snprintf(key, sizeof(key), "layers.%d." fmt, l), key)
	plan_matrix(fm, dt, KEY("self_attn.q_proj.weight"), &w->q, qdim, H);
	plan_matrix(fm, dt, KEY("self_attn.k_proj.weight"), &w->k, kvdim, H);
	plan_matrix(fm, dt, KEY("self_attn.v_proj.weight"), &w->v, kvdim, H);
	plan_matrix(fm, dt, KEY("self_attn.o_proj.weight"), &w->o, H, qdim);
	if (fm->qkv_bias)
	{
		plan_vector(fm, KEY("self_attn.q_proj.bias"), &w->q_bias, qdim);
		plan_vector(fm, KEY("self_attn.k_proj.bias"), &w->k_bias, kvdim);
		plan_vector(fm, KEY("self_attn.v_proj.bias"), &w->v_bias, kvdim);
	}
	if (fm->o_bias)
		plan_vector(fm, KEY("self_attn.o_proj.bias"), &w->o_bias, H);
	if (fm->qk_norm)
	{
		plan_vector(fm, KEY("self_attn.q_norm.weight"), &w->q_norm, fm->head_dim);
		plan_vector(fm, KEY("self_attn.k_norm.weight"), &w->k_norm, fm->head_dim);
	}
	plan_matrix(fm, dt, KEY("mlp.up_proj.weight"), &w->up, I, H);
	if (fm->mlp_bias)
	{
		plan_vector(fm, KEY("mlp.gate_proj.bias"), &w->gate_bias, I);
		plan_vector(fm, KEY("mlp.up_proj.bias"), &w->up_bias, I);
	}
	plan_matrix(fm, dt, KEY("mlp.down_proj.weight"), &w->down, H, I);
	if (fm->mlp_bias)
		plan_vector(fm, KEY("mlp.down_proj.bias"), &w->down_bias, H);
	plan_vector(fm, KEY("input_layernorm.weight"), &w->attn_norm, H);
	/* Gemma's post_attention_layernorm is on the attention output */
	plan_vector(fm, KEY("post_attention_layernorm.weight"),
				fm->sandwich ? &w->post_attn_norm : &w->ffn_norm, H);
	if (fm->sandwich)
	{
		plan_vector(fm, KEY("pre_feedforward_layernorm.weight"), &w->ffn_norm, H);
		plan_vector(fm, KEY("post_feedforward_layernorm.weight"), &w->post_ffn_norm, H);
	}
#undef KEY
}

/* GPT-2: c_attn is fused [3H x H] (split after loading), c_fc is the gate. */
static void
plan_gpt2_layer(InferModel *m, ForwardModel *fm, int l)
{
	LayerWeights *w = &fm->layer[l];
	GateDtype dt = m->gate_dtype;
	int H = m->hidden, I = fm->intermediate;
	char key[96];

#define KEY(fmt) (snprintf(key, sizeof(key), "h.%d." fmt, l), key)
	plan_matrix(fm, dt, KEY("attn.c_attn.weight"), &w->q, 3 * H, H);
	plan_vector(fm, KEY("attn.c_attn.bias"), &w->q_bias, 3 * H);
	plan_matrix(fm, dt, KEY("attn.c_proj.weight"), &w->o, H, H);
	plan_vector(fm, KEY("attn.c_proj.bias"), &w->o_bias, H);
	plan_vector(fm, KEY("mlp.c_fc.bias"), &w->gate_bias, I);
	plan_matrix(fm, dt, KEY("mlp.c_proj.weight"), &w->down, H, I);
	plan_vector(fm, KEY("mlp.c_proj.bias"), &w->down_bias, H);
	plan_vector(fm, KEY("ln_1.weight"), &w->attn_norm, H);
	plan_vector(fm, KEY("ln_1.bias"), &w->attn_norm_bias, H);
	plan_vector(fm, KEY("ln_2.weight"), &w->ffn_norm, H);
	plan_vector(fm, KEY("ln_2.bias"), &w->ffn_norm_bias, H);
#undef KEY
}

static size_t
forward_plan(InferModel *m)
{
	ForwardModel *fm = MemoryContextAllocZero(m->cxt, sizeof(ForwardModel));
	bool gpt2 = strcmp(m->family, "gpt2") == 0;
	GateDtype dt = m->gate_dtype;
	size_t bytes = sizeof(ForwardModel);

	read_config(m, fm);
	fm->parts = MemoryContextAlloc(m->cxt, sizeof(WeightPart) * (m->layers * 24 + 8));
	for (int l = 0; l < m->layers; l++)
	{
		if (gpt2)
			plan_gpt2_layer(m, fm, l);
		else
			plan_decoder_layer(m, fm, l);
	}
	plan_vector(fm, gpt2 ? "ln_f.weight" : "norm.weight", &fm->final_norm, m->hidden);
	if (gpt2)
	{
		plan_vector(fm, "ln_f.bias", &fm->final_norm_bias, m->hidden);
		plan_matrix(fm, dt, "wpe.weight", &fm->positions, fm->max_positions, m->hidden);
	}
	if (!fm->tied)
		plan_matrix(fm, dt, "lm_head.weight", &fm->lm_head, m->vocab, m->hidden);

	/* an owned model's matrices live in the backend: only vectors count here */
	for (int i = 0; i < fm->nparts; i++)
		if (!(m->owned && fm->parts[i].matrix))
			bytes += fm->parts[i].elems * (fm->parts[i].matrix ? dtype_size(dt) : sizeof(float));
	m->fwd = fm;
	return bytes;
}

const char *
forward_part_key(const InferModel *m, const Matrix *w)
{
	for (int i = 0; i < m->fwd->nparts; i++)
		if (m->fwd->parts[i].matrix == w)
			return m->fwd->parts[i].key;
	return NULL;
}

static void
load_part(InferModel *m, WeightPart *p)
{
	GateDtype dt = m->gate_dtype;
	size_t nbytes = p->elems * dtype_size(dt);
	char part[128];
	void *data;

	snprintf(part, sizeof(part), "weight:%s", p->key);
	if (p->matrix)
	{
		data = MemoryContextAllocExtended(m->cxt, nbytes, MCXT_ALLOC_HUGE);
		m->read_part(m->read_state, m->name, part, 0, data, nbytes);
		p->matrix->data = data;
		return;
	}
	data = MemoryContextAlloc(m->cxt, p->elems * sizeof(float));
	if (dt == GATE_F32)
		m->read_part(m->read_state, m->name, part, 0, data, nbytes);
	else
	{
		uint16 *half = palloc(nbytes);

		m->read_part(m->read_state, m->name, part, 0, half, nbytes);
		f16_to_f32(half, data, p->elems);
		pfree(half);
	}
	*p->vector = data;
}

/* GPT-2's fused c_attn: rows 0..H are Q, H..2H K, 2H..3H V. */
static void
split_fused_qkv(InferModel *m, LayerWeights *w)
{
	int H = m->hidden;
	size_t esize = dtype_size(w->q.dtype);

	w->q.rows = H;
	w->k = w->q;
	w->v = w->q;
	w->k.data = (char *) w->q.data + (size_t) H * H * esize;
	w->v.data = (char *) w->q.data + (size_t) 2 * H * H * esize;
	w->k_bias = w->q_bias + H;
	w->v_bias = w->q_bias + 2 * H;
}

static void
forward_load(InferModel *m)
{
	ForwardModel *fm = m->fwd;

	/* the gate rows and embeddings are the knowledge data, loaded already */
	for (int l = 0; l < m->layers; l++)
		fm->layer[l].gate = m->gate[l];
	fm->embed = (Matrix) {m->embed, m->embed_dtype, m->vocab, m->hidden};
	if (fm->tied)
		fm->lm_head = fm->embed;
	for (int i = 0; i < fm->nparts; i++)
	{
		/* an owned model's matrices go to the backend instead (compute_owned_load) */
		if (m->owned && fm->parts[i].matrix)
			continue;
		load_part(m, &fm->parts[i]);
		INFER_CHECK_INTERRUPTS();
	}
	if (fm->learned_positions)
		for (int l = 0; l < m->layers; l++)
			split_fused_qkv(m, &fm->layer[l]);
	else
	{
		fm->inv_freq = rope_frequencies(m, fm, fm->rope_theta, true);
		/* Gemma 3's sliding layers: their own base, never scaled */
		fm->inv_freq_local = fm->rope_local_theta > 0
								 ? rope_frequencies(m, fm, fm->rope_local_theta, false)
								 : fm->inv_freq;
	}
}

ForwardModel *
forward_require(InferModel *m, const char *what)
{
	if (m->fwd == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("%s needs model \"%s\" at extract level inference, but it is registered at "
						"level browse",
						what, m->name),
				 errhint("Re-extract the model with --level inference and register it with "
						 "extract_level => 'inference'.")));
	if (m->fwd->rope_scaling == ROPE_SCALING_UNSUPPORTED)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("model \"%s\" uses a RoPE scaling type the forward pass does not "
							   "support (only linear and llama3)",
							   m->name)));
	if (m->fwd->activation == ACT_UNSUPPORTED)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("model \"%s\" uses an activation the forward pass does not support "
							   "(only silu, gelu and gelu_pytorch_tanh/gelu_new)",
							   m->name)));
	return m->fwd;
}

/* ---- 2. kernels ---- */

/*
 * y[t * rows + r] = W[r] . x[t] (+ bias[r]) for n inputs. One input is a
 * streaming gemv; several share each cached block of W (gate_knn.c's
 * kernels: WASM SIMD, f16 widened in registers).
 */
static void
matmul(float *y, const Matrix *w, const float *x, int n, const float *bias)
{
	if (n == 1)
		gate_scores(w, x, y);
	else
		gate_scores_batch(w, x, n, y);
	if (bias)
		for (int t = 0; t < n; t++)
			for (int r = 0; r < w->rows; r++)
				y[(size_t) t * w->rows + r] += bias[r];
}

/*
 * out = norm(x) over n values: RMSNorm x / rms(x) * (offset + w), or
 * LayerNorm (x - mean) / std * w + b. Sums in double.
 */
static void
norm(const ForwardModel *fm, float *out, const float *x, int n, const float *w, const float *b)
{
	double mean = 0, var = 0;
	float r;

	if (fm->layernorm)
	{
		for (int i = 0; i < n; i++)
			mean += x[i];
		mean /= n;
	}
	for (int i = 0; i < n; i++)
		var += (x[i] - mean) * (x[i] - mean);
	r = (float) (1.0 / sqrt(var / n + fm->norm_eps));
	for (int i = 0; i < n; i++)
		out[i] = (float) (x[i] - mean) * r * (fm->norm_offset + w[i]) + (b ? b[i] : 0);
}

/* norm() on each of `rows` rows of n values, in place allowed */
static void
norm_rows(const ForwardModel *fm, float *out, const float *x, int rows, int n, const float *w,
		  const float *b)
{
	for (int t = 0; t < rows; t++)
		norm(fm, out + (size_t) t * n, x + (size_t) t * n, n, w, b);
}

/* Rotates each head of one position (rotate_half pairing: i with i + d/2). */
static void
rope(float *x, int heads, int head_dim, const float *inv_freq, int pos)
{
	int half = head_dim / 2;

	for (int i = 0; i < half; i++)
	{
		/* HF computes the angle in float32 */
		float ang = inv_freq[i] * (float) pos;
		float c = (float) cos(ang), s = (float) sin(ang);

		for (int h = 0; h < heads; h++)
		{
			float *v = x + h * head_dim;
			float a = v[i], b = v[i + half];

			v[i] = a * c - b * s;
			v[i + half] = b * c + a * s;
		}
	}
}

/* erf, Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): libc's is not exported. */
static double
erf_approx(double x)
{
	double t = 1.0 / (1.0 + 0.3275911 * fabs(x));
	double y =
		1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t +
			   0.254829592) *
				  t * exp(-x * x);

	return x >= 0 ? y : -y;
}

static inline float
activate(Activation act, float x)
{
	switch (act)
	{
		case ACT_SILU:
			return (float) (x / (1.0 + exp(-(double) x)));
		case ACT_GELU_TANH:
			return (float) (0.5 * x *
							(1.0 + tanh(0.7978845608028654 * (x + 0.044715 * (double) x * x * x))));
		case ACT_GELU:
			return (float) (0.5 * x * (1.0 + erf_approx(x / M_SQRT2)));
		case ACT_UNSUPPORTED:
			break;
	}
	return x;
}

static inline float
softcap(float x, float cap)
{
	return cap > 0 ? (float) (cap * tanh(x / cap)) : x;
}

/* ---- 3. a run ---- */

static size_t
kv_bytes(const InferModel *m, const ForwardModel *fm, int capacity)
{
	return (size_t) 2 * m->layers * capacity * fm->kv_heads * fm->head_dim * sizeof(float);
}

/* Activations of one step of n tokens (the buffers forward_step allocates). */
static size_t
step_bytes(const InferModel *m, const ForwardModel *fm, int n, int capacity)
{
	size_t qdim = (size_t) fm->heads * fm->head_dim, kvdim = (size_t) fm->kv_heads * fm->head_dim;
	size_t per_token =
		3 * (size_t) m->hidden + 3 * qdim + 2 * kvdim + 3 * (size_t) fm->intermediate;

	return (n * per_token + capacity + m->vocab) * sizeof(float) + 64 * 1024;
}

/* kv_in_heap: false when a host backend keeps the KV cache (compute_forward.c) */
static void
check_run_limits(InferModel *m, ForwardModel *fm, int capacity, int max_step, bool kv_in_heap)
{
	size_t need =
		(kv_in_heap ? kv_bytes(m, fm, capacity) : 0) + step_bytes(m, fm, max_step, capacity);
	size_t allowed = (size_t) infer_max_memory_mb * 1024 * 1024;
	size_t used = model_loaded_bytes();
	size_t left = allowed > used ? allowed - used : 0;

	if (capacity > infer_max_context)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("the prompt needs %d positions but infer.max_context allows %d",
							   capacity, infer_max_context),
						errhint("Shorten the prompt, or raise infer.max_context.")));
	if (fm->max_positions > 0 && capacity > fm->max_positions)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("the prompt needs %d positions but model \"%s\" has a context of %d "
							   "(max_position_embeddings)",
							   capacity, m->name, fm->max_positions),
						errhint("Shorten the prompt.")));
	if (need > left)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("a run of %d positions on model \"%s\" needs %zu kB for its KV cache and "
						"activations, but infer.max_memory (%d MB) leaves %zu kB after the loaded "
						"models",
						capacity, m->name, (need + 1023) / 1024, infer_max_memory_mb, left / 1024),
				 errhint("Shorten the prompt or raise infer.max_memory.")));
}

ForwardRun *
forward_begin(InferModel *m, int capacity, int max_step, bool capture_act, bool capture_resid)
{
	ForwardModel *fm = forward_require(m, "the forward pass");
	ForwardRun *run = palloc0(sizeof(ForwardRun));

	run->backend = compute_forward_backend(m);
	run->auto_host = infer_compute == COMPUTE_AUTO && run->backend == COMPUTE_WEBGPU;
	check_run_limits(m, fm, capacity, max_step, run->backend == COMPUTE_WASM);
	run->m = m;
	run->fm = fm;
	run->capacity = capacity;
	if (run->backend == COMPUTE_WASM)
	{
		run->kcache = palloc_extended(kv_bytes(m, fm, capacity) / 2, MCXT_ALLOC_HUGE);
		run->vcache = palloc_extended(kv_bytes(m, fm, capacity) / 2, MCXT_ALLOC_HUGE);
	}
	run->last = palloc0(sizeof(float) * m->hidden);
	if (capture_act)
		run->capture.act = palloc0(sizeof(float) * m->layers * fm->intermediate);
	if (capture_resid)
		run->capture.resid = palloc0(sizeof(float) * m->layers * m->hidden);
	if (run->backend != COMPUTE_WASM)
		compute_forward_begin(run);
	return run;
}

/* x[t] = embed[id] * embed_scale (+ wpe[pos] for learned positions) */
static void
embed_tokens(ForwardRun *run, float *x, const int32 *ids, int n)
{
	InferModel *m = run->m;
	ForwardModel *fm = run->fm;
	int H = m->hidden;

	for (int t = 0; t < n; t++)
	{
		float *row = x + (size_t) t * H;

		if (m->embed_dtype == GATE_F32)
			memcpy(row, (const float *) m->embed + (size_t) ids[t] * H, sizeof(float) * H);
		else
			f16_to_f32((const uint16 *) m->embed + (size_t) ids[t] * H, row, H);
		for (int i = 0; i < H; i++)
			row[i] *= m->embed_scale;
		if (fm->learned_positions)
		{
			float *pos = palloc(sizeof(float) * H);
			const Matrix *p = &fm->positions;

			if (p->dtype == GATE_F32)
				memcpy(pos, (const float *) p->data + (size_t) (run->n + t) * H, sizeof(float) * H);
			else
				f16_to_f32((const uint16 *) p->data + (size_t) (run->n + t) * H, pos, H);
			for (int i = 0; i < H; i++)
				row[i] += pos[i];
			pfree(pos);
		}
	}
}

/*
 * Causal attention of n new positions (their q in `q`, their k/v already in
 * the layer's cache) over every earlier position, or the last
 * sliding_window ones on sliding layers. Grouped-query: query head h reads
 * kv head h / (heads / kv_heads). out: [n x heads * head_dim].
 */
static void
attention(ForwardRun *run, int l, const float *q, int n, float *out)
{
	ForwardModel *fm = run->fm;
	int hd = fm->head_dim, kvdim = fm->kv_heads * hd, group = fm->heads / fm->kv_heads;
	const float *kc = run->kcache + (size_t) l * run->capacity * kvdim;
	const float *vc = run->vcache + (size_t) l * run->capacity * kvdim;
	double *p = palloc(sizeof(double) * run->capacity);

	for (int t = 0; t < n; t++)
	{
		int pos = run->n + t;
		int lo = fm->layer[l].sliding && fm->sliding_window > 0
					 ? Max(0, pos - fm->sliding_window + 1)
					 : 0;

		for (int h = 0; h < fm->heads; h++)
		{
			const float *qh = q + (size_t) t * fm->heads * hd + h * hd;
			float *oh = out + (size_t) t * fm->heads * hd + h * hd;
			int kvh = h / group;
			double max = -INFINITY, z = 0;

			for (int j = lo; j <= pos; j++)
			{
				const float *kj = kc + (size_t) j * kvdim + kvh * hd;
				float s = 0;

				for (int i = 0; i < hd; i++)
					s += qh[i] * kj[i];
				p[j] = softcap(s * fm->attn_scale, fm->attn_softcap);
				max = Max(max, p[j]);
			}
			for (int j = lo; j <= pos; j++)
			{
				p[j] = exp(p[j] - max);
				z += p[j];
			}
			memset(oh, 0, sizeof(float) * hd);
			for (int j = lo; j <= pos; j++)
			{
				const float *vj = vc + (size_t) j * kvdim + kvh * hd;
				float pj = (float) (p[j] / z);

				for (int i = 0; i < hd; i++)
					oh[i] += pj * vj[i];
			}
		}
	}
	pfree(p);
}

/* The attention block of layer l for n new positions; adds into x. */
static void
attention_block(ForwardRun *run, int l, float *x, int n)
{
	InferModel *m = run->m;
	ForwardModel *fm = run->fm;
	LayerWeights *w = &fm->layer[l];
	int H = m->hidden, hd = fm->head_dim;
	int qdim = fm->heads * hd, kvdim = fm->kv_heads * hd;
	float *h = palloc(sizeof(float) * n * H);
	float *q = palloc(sizeof(float) * n * qdim);
	float *att = palloc(sizeof(float) * n * qdim);
	float *kc = run->kcache + ((size_t) l * run->capacity + run->n) * kvdim;
	float *vc = run->vcache + ((size_t) l * run->capacity + run->n) * kvdim;
	float *o = palloc(sizeof(float) * n * H);

	norm_rows(fm, h, x, n, H, w->attn_norm, w->attn_norm_bias);
	matmul(q, &w->q, h, n, w->q_bias);
	matmul(kc, &w->k, h, n, w->k_bias); /* straight into the cache */
	matmul(vc, &w->v, h, n, w->v_bias);
	if (fm->qk_norm)
	{
		norm_rows(fm, q, q, n * fm->heads, hd, w->q_norm, NULL);
		norm_rows(fm, kc, kc, n * fm->kv_heads, hd, w->k_norm, NULL);
	}
	if (!fm->learned_positions)
	{
		const float *f = w->sliding ? fm->inv_freq_local : fm->inv_freq;

		for (int t = 0; t < n; t++)
		{
			rope(q + (size_t) t * qdim, fm->heads, hd, f, run->n + t);
			rope(kc + (size_t) t * kvdim, fm->kv_heads, hd, f, run->n + t);
		}
	}
	attention(run, l, q, n, att);
	matmul(o, &w->o, att, n, w->o_bias);
	if (fm->sandwich)
		norm_rows(fm, o, o, n, H, w->post_attn_norm, NULL);
	for (size_t i = 0; i < (size_t) n * H; i++)
		x[i] += o[i];
	pfree(h);
	pfree(q);
	pfree(att);
	pfree(o);
}

/*
 * The MLP of layer l for n positions; adds into x. Gated: down(act(gate h)
 * * up h); plain (GPT-2): down(act(c_fc h + b)). The input of down is what
 * forward-mode walk reports, captured at the last position.
 */
static void
mlp_block(ForwardRun *run, int l, float *x, int n)
{
	InferModel *m = run->m;
	ForwardModel *fm = run->fm;
	LayerWeights *w = &fm->layer[l];
	int H = m->hidden, I = fm->intermediate;
	float *h = palloc(sizeof(float) * n * H);
	float *g = palloc(sizeof(float) * n * I);
	float *u = fm->plain_ffn ? NULL : palloc(sizeof(float) * n * I);
	float *d = palloc(sizeof(float) * n * H);

	norm_rows(fm, h, x, n, H, w->ffn_norm, w->ffn_norm_bias);
	matmul(g, &w->gate, h, n, w->gate_bias);
	if (u)
		matmul(u, &w->up, h, n, w->up_bias);
	for (size_t i = 0; i < (size_t) n * I; i++)
		g[i] = activate(fm->activation, g[i]) * (u ? u[i] : 1.0f);
	if (run->capture.act)
		memcpy(run->capture.act + (size_t) l * I, g + (size_t) (n - 1) * I, sizeof(float) * I);
	matmul(d, &w->down, g, n, w->down_bias);
	if (fm->sandwich)
		norm_rows(fm, d, d, n, H, w->post_ffn_norm, NULL);
	for (size_t i = 0; i < (size_t) n * H; i++)
		x[i] += d[i];
	pfree(h);
	pfree(g);
	if (u)
		pfree(u);
	pfree(d);
}

/*
 * A run 'auto' gave the GPU whose first step the host declined (the GPU
 * failed: device lost, out of memory, a limit; the host then stops offering
 * it): the run steps on wasm from here, with its KV cache in the heap.
 */
static void
fall_back_to_wasm(ForwardRun *run)
{
	MemoryContext run_cxt = GetMemoryChunkContext(run);
	size_t half = kv_bytes(run->m, run->fm, run->capacity) / 2;

	check_run_limits(run->m, run->fm, run->capacity, 1, true);
	run->kcache = MemoryContextAllocExtended(run_cxt, half, MCXT_ALLOC_HUGE);
	run->vcache = MemoryContextAllocExtended(run_cxt, half, MCXT_ALLOC_HUGE);
	run->backend = COMPUTE_WASM;
	run->auto_host = false;
	infer_log_info("pg_infer: the GPU declined a forward step of model \"%s\" under "
				   "infer.compute = 'auto'; it runs on wasm",
				   run->m->name);
}

/* A step's tokens fit the run's cache and the model's vocabulary. */
static void
check_step(ForwardRun *run, const int32 *ids, int n)
{
	InferModel *m = run->m;

	if (run->n + n > run->capacity)
		elog(ERROR, "pg_infer: forward run of %d positions overflows its cache of %d", run->n + n,
			 run->capacity);
	for (int t = 0; t < n; t++)
		if (ids[t] < 0 || ids[t] >= m->vocab)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
							errmsg("token id %d is outside model \"%s\"'s vocabulary (%d)", ids[t],
								   m->name, m->vocab)));
}

void
forward_step(ForwardRun *run, const int32 *ids, int n)
{
	InferModel *m = run->m;
	int H = m->hidden;
	float *x;

	if (n <= 0)
		return;
	check_step(run, ids, n);
	if (run->backend != COMPUTE_WASM)
	{
		if (compute_forward_step(run, ids, n))
			return;
		fall_back_to_wasm(run);
	}
	x = palloc_extended(sizeof(float) * n * H, MCXT_ALLOC_HUGE);
	embed_tokens(run, x, ids, n);
	for (int l = 0; l < m->layers; l++)
	{
		attention_block(run, l, x, n);
		mlp_block(run, l, x, n);
		if (run->capture.resid)
			memcpy(run->capture.resid + (size_t) l * H, x + (size_t) (n - 1) * H,
				   sizeof(float) * H);
		INFER_CHECK_INTERRUPTS();
	}
	memcpy(run->last, x + (size_t) (n - 1) * H, sizeof(float) * H);
	run->n += n;
	pfree(x);
}

/*
 * Whether a batch can go to the host backend in one call: every run on the
 * same host backend, none an 'auto' run at its first step (the host may
 * decline that one, and it must then run alone on wasm).
 */
static bool
batchable(ForwardRun **runs, const int *n, int count)
{
	if (count < 2 || runs[0]->backend == COMPUTE_WASM)
		return false;
	for (int i = 0; i < count; i++)
		if (runs[i]->m != runs[0]->m || runs[i]->backend != runs[0]->backend || n[i] <= 0 ||
			(runs[i]->auto_host && runs[i]->n == 0))
			return false;
	return true;
}

void
forward_step_many(ForwardRun **runs, const int32 *const *ids, const int *n, int count)
{
	if (!batchable(runs, n, count))
	{
		for (int i = 0; i < count; i++)
			forward_step(runs[i], ids[i], n[i]);
		return;
	}
	for (int i = 0; i < count; i++)
		check_step(runs[i], ids[i], n[i]);
	compute_forward_steps(runs, ids, n, count);
}

void
forward_logits(ForwardRun *run, const float *resid, float *logits)
{
	ForwardModel *fm = run->fm;
	int H = run->m->hidden;
	float *h;

	if (run->have_logits && resid == run->last)
	{
		memcpy(logits, run->logits, sizeof(float) * run->m->vocab);
		return;
	}
	if (fm->lm_head.data == NULL)
		compute_owned_unsupported(run->m, "the logit lens over a captured residual");
	h = palloc(sizeof(float) * H);
	norm(fm, h, resid, H, fm->final_norm, fm->final_norm_bias);
	matmul(logits, &fm->lm_head, h, 1, NULL);
	if (fm->final_softcap > 0)
		for (int v = 0; v < run->m->vocab; v++)
			logits[v] = softcap(logits[v], fm->final_softcap);
	pfree(h);
}

/*
 * A feature's write token, read the way the model reads its residual
 * stream: a feature adds activation * W_down[:, f], so its token is the
 * argmax of the logit lens (final norm + lm_head) over +-W_down[:, f], the
 * sign of the activation's. Unlike the vindex's down_meta (W_embed @
 * W_down, the input embeddings), this is what the model predicts from the
 * feature, also when lm_head is not tied to the embeddings. Soft-capping is
 * monotonic and leaves the argmax alone.
 */
#define FEATURE_TOKEN_BATCH 16

static int32 *
feature_token_slot(InferModel *m, int layer, int feature, bool negative)
{
	ForwardModel *fm = m->fwd;

	if (fm->feature_token == NULL)
	{
		size_t n = (size_t) m->layers * fm->intermediate * 2;

		fm->feature_token = MemoryContextAllocHuge(m->cxt, sizeof(int32) * n);
		for (size_t i = 0; i < n; i++)
			fm->feature_token[i] = -1;
	}
	return &fm->feature_token[((size_t) layer * fm->intermediate + feature) * 2 + negative];
}

/* Fills the write tokens of `n` uncached slots with one batched lm_head pass. */
static void
feature_tokens_batch(InferModel *m, const GateHit *hits, int32 **slots, int n)
{
	ForwardModel *fm = m->fwd;
	int H = m->hidden;
	float *x = palloc(sizeof(float) * (size_t) n * H);
	float *logits = palloc(sizeof(float) * (size_t) n * m->vocab);

	float *cols = NULL;

	/* an owned model's W_down is in the backend: its columns come from there */
	if (m->owned)
		cols = compute_owned_columns(m, hits, n);
	for (int i = 0; i < n; i++)
	{
		float *col = x + (size_t) i * H;

		if (cols)
			memcpy(col, cols + (size_t) i * H, sizeof(float) * H);
		else
			gate_column(&fm->layer[hits[i].layer].down, hits[i].feature, col);
		if (hits[i].score < 0)
			for (int j = 0; j < H; j++)
				col[j] = -col[j];
		norm(fm, col, col, H, fm->final_norm, fm->final_norm_bias);
	}
	if (cols)
		pfree(cols);
	if (fm->lm_head.data == NULL)
	{
		/* an owned model's own lm_head: the backend's lens */
		int32 *tokens = palloc(sizeof(int32) * n);

		compute_owned_lens(m, x, n, tokens);
		for (int i = 0; i < n; i++)
			*slots[i] = tokens[i];
		pfree(tokens);
		pfree(x);
		pfree(logits);
		return;
	}
	matmul(logits, &fm->lm_head, x, n, NULL);
	for (int i = 0; i < n; i++)
	{
		const float *row = logits + (size_t) i * m->vocab;
		int best = 0;

		for (int v = 1; v < m->vocab; v++)
			if (row[v] > row[best])
				best = v;
		*slots[i] = best;
	}
	pfree(x);
	pfree(logits);
}

void
forward_lens_tokens(InferModel *m, const float *resid, int n, int32 *tokens)
{
	ForwardModel *fm = forward_require(m, "the logit lens");
	int H = m->hidden;
	float *h = palloc(sizeof(float) * (size_t) Max(n, 1) * H);

	for (int i = 0; i < n; i++)
		norm(fm, h + (size_t) i * H, resid + (size_t) i * H, H, fm->final_norm,
			 fm->final_norm_bias);
	if (fm->lm_head.data == NULL)
		compute_owned_lens(m, h, n, tokens);
	else
	{
		float *logits = palloc(sizeof(float) * m->vocab);

		/* one at a time, as forward_logits computes each */
		for (int i = 0; i < n; i++)
		{
			int best = 0;

			matmul(logits, &fm->lm_head, h + (size_t) i * H, 1, NULL);
			for (int v = 1; v < m->vocab; v++)
				if (logits[v] > logits[best])
					best = v;
			tokens[i] = best;
		}
		pfree(logits);
	}
	pfree(h);
}

void
forward_feature_tokens(InferModel *m, const GateHit *hits, int n, int32 *tokens)
{
	GateHit batch[FEATURE_TOKEN_BATCH];
	int32 *slots[FEATURE_TOKEN_BATCH];
	int nbatch = 0;

	forward_require(m, "a feature's write token");
	for (int i = 0; i < n; i++)
	{
		int32 *slot = feature_token_slot(m, hits[i].layer, hits[i].feature, hits[i].score < 0);

		if (*slot >= 0)
			continue;
		/* a feature twice in the batch is computed twice, harmlessly */
		batch[nbatch] = hits[i];
		slots[nbatch++] = slot;
		if (nbatch == FEATURE_TOKEN_BATCH)
		{
			feature_tokens_batch(m, batch, slots, nbatch);
			nbatch = 0;
			INFER_CHECK_INTERRUPTS();
		}
	}
	if (nbatch > 0)
		feature_tokens_batch(m, batch, slots, nbatch);
	for (int i = 0; i < n; i++)
		tokens[i] = *feature_token_slot(m, hits[i].layer, hits[i].feature, hits[i].score < 0);
}

int32 *
forward_tokens(InferModel *m, text *prompt, int *n)
{
	int len = VARSIZE_ANY_EXHDR(prompt);
	int32 *ids;

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("prompt must not be empty")));
	/* the post-processor adds what the model expects (BOS for Llama's) */
	ids = host_model_tokenize(m->name, VARDATA_ANY(prompt), len, true, n);
	if (*n == 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("prompt has no tokens under model \"%s\"", m->name)));
	return ids;
}

/* A model registered at level inference or all plans and loads its forward weights (model.h). */
static int64
plan_hook(InferModel *m)
{
	return m->level >= 1 ? (int64) forward_plan(m) : 0;
}

static void
load_hook(InferModel *m)
{
	if (m->fwd)
		forward_load(m); /* after gate and embed: the pass points into them */
}

static const ModelLoadHooks forward_hooks = {
	.plan = plan_hook,
	.load = load_hook,
};

void
forward_init(void)
{
	model_register_hooks(&forward_hooks);
}
