/*
 * compute.c: the compute seam (compute.h) and its two implementations of
 * the batched gate pass: the built-in WASM kernels (what scan_layers and
 * feature_signatures_batch did before the seam: exactly the same loops) and
 * a host backend (infer.compute = 'onnx' or 'webgpu'; under 'auto' passes are
 * offered to the host), one host call per batch.
 *
 * The host backend holds its own copy of a model's gate rows, keyed by the
 * model's name and load generation (a model re-created under the same name
 * is another key). It gets them on the first call that finds the backend
 * without them (first use, or after the backend's worker restarted), from C's
 * heap, with the f16 subnormal fix-ups so its scores are exact too.
 */
#include "pg_infer.h"

#include "deadline.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "compute.h"
#include "guc.h"
#include "host.h"
#include "stats.h"

/* Queries scored together by the batched WASM kernel. */
#define WASM_BATCH 16

static void
wasm_push_layer(TopK *best, int layer, const float *scores, int rows, const GatePass *p)
{
	TopK one;

	/* a per-layer limit of k or more cannot change what the k best are */
	if (p->per_layer_k <= 0 || p->per_layer_k >= best->k)
	{
		topk_push_layer(best, layer, scores, rows, p->positive_only);
		return;
	}
	topk_init(&one, p->per_layer_k, best->rank);
	topk_push_layer(&one, layer, scores, rows, p->positive_only);
	for (int i = 0; i < one.n; i++)
		topk_push(best, one.hits[i].layer, one.hits[i].feature, one.hits[i].score);
	pfree(one.hits);
}

static void
wasm_gate_topk(InferModel *m, const GatePass *p, TopK *out)
{
	int max_features = 0;
	float *scores;

	for (int l = 0; l < m->layers; l++)
		max_features = Max(max_features, m->features[l]);
	scores = palloc(sizeof(float) * (size_t) Min(p->nq, WASM_BATCH) * Max(max_features, 1));

	for (int b0 = 0; b0 < p->nq; b0 += WASM_BATCH)
	{
		int nb = Min(WASM_BATCH, p->nq - b0);
		const float *q = p->queries + (size_t) b0 * m->hidden;

		for (int l = 0; l < m->layers; l++)
		{
			if (p->use_layer && !p->use_layer[l])
				continue;
			/* one query: the single-query kernel, as scan_layers used */
			if (p->nq == 1)
				gate_scores(&m->gate[l], q, scores);
			else
				gate_scores_batch(&m->gate[l], q, nb, scores);
			for (int i = 0; i < nb; i++)
				wasm_push_layer(&out[b0 + i], l, scores + (size_t) i * m->features[l],
								m->features[l], p);
			INFER_CHECK_INTERRUPTS();
		}
	}
	pfree(scores);
}

/* The host backend's key of a model: its name and load generation. */
static void
model_key(const InferModel *m, char *key, size_t size)
{
	snprintf(key, size, "%s#" UINT64_FORMAT, m->name, m->generation);
}

static const char *
kind_name(ComputeBackendKind kind)
{
	switch (kind)
	{
		case COMPUTE_ONNX:
			return "onnx";
		case COMPUTE_WEBGPU:
			return "webgpu";
		case COMPUTE_AUTO:
			return "auto";
		default:
			return "wasm";
	}
}

/* What infer.compute names now. */
static const char *
backend_name(void)
{
	return kind_name(infer_compute);
}

/*
 * The pass on the host backend infer.compute names (under 'auto': the one
 * the host picks). false: 'auto' and the host declined; nothing was filled.
 */
static bool
host_gate_topk(InferModel *m, const GatePass *p, TopK *out, int backend)
{
	char key[MODEL_NAME_MAX + 32];
	char *result;
	const int32 *counts;
	const GateHit *hits;

	model_key(m, key, sizeof(key));
	result = host_compute_gate_topk(backend, key, p, m->hidden, m->layers);
	if (result == host_compute_declined)
		return false;
	if (result == NULL && m->owned)
	{
		/* the worker restarted since the model was streamed into it: stream it again */
		model_with_source(m, compute_owned_load);
		result = host_compute_gate_topk(backend, key, p, m->hidden, m->layers);
		if (result == NULL)
			ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
							errmsg("the compute backend lost model \"%s\" right after loading it",
								   m->name)));
	}
	if (result == NULL)
	{
		/* the backend does not hold this model (yet, or since a restart) */
		int64 bytes = 0;

		for (int l = 0; l < m->layers; l++)
		{
			host_compute_load_gate(backend, key, l, m->layers, &m->gate[l]);
			bytes += (int64) m->gate[l].rows * m->gate[l].hidden * sizeof(float);
		}
		stats_compute_bytes(m->name, COMPUTE_PART_GATE, bytes);
		infer_log_info("pg_infer: compute backend \"%s\" now holds model \"%s\" (" INT64_FORMAT
					   " bytes of gate rows)",
					   backend_name(), m->name, bytes);
		result = host_compute_gate_topk(backend, key, p, m->hidden, m->layers);
		if (result == host_compute_declined)
			return false;
		if (result == NULL)
			ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
							errmsg("the compute backend lost model \"%s\" right after loading it",
								   m->name)));
	}
	counts = (const int32 *) result;
	hits = (const GateHit *) (result + sizeof(int32) * p->nq);
	for (int i = 0; i < p->nq; i++)
	{
		const GateHit *h = hits + (size_t) i * p->k;

		if (counts[i] < 0 || counts[i] > p->k)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the compute backend returned %d hits for a top-%d", counts[i], p->k)));
		for (int j = 0; j < counts[i]; j++)
		{
			if (h[j].layer < 0 || h[j].layer >= m->layers ||
				(p->use_layer && !p->use_layer[h[j].layer]) || h[j].feature < 0 ||
				h[j].feature >= m->features[h[j].layer])
				ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
								errmsg("the compute backend returned feature %d of layer %d, "
									   "which model \"%s\" does not have or was not asked for",
									   h[j].feature, h[j].layer, m->name)));
			out[i].hits[j] = h[j];
		}
		out[i].n = counts[i];
	}
	pfree(result);
	return true;
}

void
compute_gate_topk(InferModel *m, const GatePass *p, TopK *out)
{
	for (int i = 0; i < p->nq; i++)
		topk_init(&out[i], p->k, p->rank);
	if (p->nq <= 0 || p->k <= 0)
		return;
	/*
	 * A backend-owned model: on the backend that holds it ('auto' too);
	 * 'wasm' and 'webgpu' have no copy of its gate rows.
	 */
	if (m->owned)
	{
		if (infer_compute != COMPUTE_ONNX && infer_compute != COMPUTE_AUTO)
			compute_owned_refuse(m);
		host_gate_topk(m, p, out, COMPUTE_ONNX);
	}
	/*
	 * 'auto': 'wasm', but passes are offered to the host, which takes them on
	 * a hardware GPU (docs/webgpu.md; onnx is not picked: docs/compute.md)
	 */
	else if (infer_compute == COMPUTE_ONNX || infer_compute == COMPUTE_WEBGPU)
		host_gate_topk(m, p, out, infer_compute);
	else if (infer_compute != COMPUTE_AUTO || p->nq < COMPUTE_AUTO_HOST_MIN_NQ ||
			 !host_gate_topk(m, p, out, COMPUTE_AUTO))
		wasm_gate_topk(m, p, out);
	for (int i = 0; i < p->nq; i++)
		topk_sorted(&out[i]);
}

void
compute_model_freed(InferModel *m)
{
	char key[MODEL_NAME_MAX + 32];

	model_key(m, key, sizeof(key));
	host_compute_drop(key);
	stats_compute_bytes(m->name, COMPUTE_PART_ALL, 0);
}

/* ---- the forward step ---- */

ComputeBackendKind
compute_forward_backend(InferModel *m)
{
	/* an owned model steps where its weights are ('auto' too) */
	if (m->owned)
	{
		if (infer_compute != COMPUTE_ONNX && infer_compute != COMPUTE_AUTO)
			compute_owned_refuse(m);
		return COMPUTE_ONNX;
	}
	if (infer_compute == COMPUTE_ONNX || infer_compute == COMPUTE_WEBGPU)
		return infer_compute;
	/*
	 * 'auto': a GPU that is not a CPU emulation, when the host has one
	 * (webgpu.md) and no step on it failed; else the built-in pass. onnx is
	 * not picked for steps: docs/compute.md says why.
	 */
	if (infer_compute == COMPUTE_AUTO)
		return host_compute_auto_forward();
	return COMPUTE_WASM;
}

/* Runs get ids unique within this backend process (the worker keys KV caches by them). */
static int next_host_run = 0;

/* The run's memory context is going: the backend frees its KV cache. */
static void
host_run_end(void *arg)
{
	host_compute_forward_end((int) (intptr_t) arg);
}

void
compute_forward_begin(ForwardRun *run)
{
	MemoryContextCallback *cb = palloc(sizeof(MemoryContextCallback));

	if (next_host_run == PG_INT32_MAX)
		next_host_run = 0;
	run->host_run = ++next_host_run;
	run->logits = palloc_extended(sizeof(float) * run->m->vocab, MCXT_ALLOC_HUGE);
	cb->func = host_run_end;
	cb->arg = (void *) (intptr_t) run->host_run;
	/* forward_begin allocated the run here: the callback goes with it */
	MemoryContextRegisterResetCallback(GetMemoryChunkContext(run), cb);
}

/* A matrix from C's heap; an owned model's (no data here) was staged already. */
static void
send_matrix(int backend, const char *key, const char *name, const Matrix *w)
{
	if (w->data == NULL)
		return;
	host_compute_load_tensor(backend, key, name, w->data, w->rows, w->hidden, w->dtype == GATE_F16,
							 w->fix, w->nfix);
}

static void
send_vector(int backend, const char *key, const char *name, const float *v, int n)
{
	if (v != NULL)
		host_compute_load_tensor(backend, key, name, v, 1, n, false, NULL, 0);
}

/* What the backend holds of a matrix: float32 (ONNX Runtime folds f16 into f32). */
static int64
matrix_bytes(const InferModel *m, const Matrix *w)
{
	return w->data || (m->owned && w->rows > 0) ? (int64) w->rows * w->hidden * sizeof(float) : 0;
}

/*
 * Hands the backend every forward weight of the model, from C's heap, by
 * role name (packages/compute/src/forward.ts reads the same names), then the
 * architecture. GPT-2's fused c_attn goes as its q/k/v views. "l0.q" goes
 * first: the host starts a new load with it (bridge.ts).
 */
static void
host_forward_load(InferModel *m, const char *key, int backend)
{
	ForwardModel *fm = m->fwd;
	int H = m->hidden, I = fm->intermediate, hd = fm->head_dim;
	int qdim = fm->heads * hd, kvdim = fm->kv_heads * hd;
	int nwords = FS_FIXED_WORDS + m->layers;
	double *spec = palloc0(sizeof(double) * nwords);
	int64 bytes = 0;
	char name[64];

	for (int l = 0; l < m->layers; l++)
	{
		LayerWeights *w = &fm->layer[l];
		const Matrix *mats[] = {&w->q, &w->k, &w->v, &w->o, &w->gate, &w->up, &w->down};
		const char *mat_names[] = {"q", "k", "v", "o", "gate", "up", "down"};
		struct
		{
			const char *name;
			const float *v;
			int n;
		} vecs[] = {
			{"q_bias", w->q_bias, qdim},
			{"k_bias", w->k_bias, kvdim},
			{"v_bias", w->v_bias, kvdim},
			{"o_bias", w->o_bias, H},
			{"q_norm", w->q_norm, hd},
			{"k_norm", w->k_norm, hd},
			{"gate_bias", w->gate_bias, I},
			{"up_bias", w->up_bias, I},
			{"down_bias", w->down_bias, H},
			{"attn_norm", w->attn_norm, H},
			{"attn_norm_bias", w->attn_norm_bias, H},
			{"post_attn_norm", w->post_attn_norm, H},
			{"ffn_norm", w->ffn_norm, H},
			{"ffn_norm_bias", w->ffn_norm_bias, H},
			{"post_ffn_norm", w->post_ffn_norm, H},
		};

		for (int i = 0; i < (int) lengthof(mats); i++)
		{
			snprintf(name, sizeof(name), "l%d.%s", l, mat_names[i]);
			send_matrix(backend, key, name, mats[i]);
			bytes += matrix_bytes(m, mats[i]);
		}
		for (int i = 0; i < (int) lengthof(vecs); i++)
		{
			snprintf(name, sizeof(name), "l%d.%s", l, vecs[i].name);
			send_vector(backend, key, name, vecs[i].v, vecs[i].n);
		}
		spec[FS_FIXED_WORDS + l] = w->sliding ? 1 : 0;
		INFER_CHECK_INTERRUPTS();
	}
	send_matrix(backend, key, "embed", &fm->embed);
	bytes += matrix_bytes(m, &fm->embed);
	if (!fm->tied)
	{
		send_matrix(backend, key, "lm_head", &fm->lm_head);
		bytes += matrix_bytes(m, &fm->lm_head);
	}
	if (fm->learned_positions)
	{
		send_matrix(backend, key, "positions", &fm->positions);
		bytes += matrix_bytes(m, &fm->positions);
	}
	/* an owned model's W_down stays staged in its storage dtype (write tokens' columns) */
	if (m->owned)
		for (int l = 0; l < m->layers; l++)
			bytes += (int64) H * I * dtype_size(m->gate_dtype);
	/* ... and its own lm_head again, float32, in the logit lens's session */
	if (m->owned && !fm->tied)
		bytes += (int64) m->vocab * H * sizeof(float);
	send_vector(backend, key, "final_norm", fm->final_norm, H);
	send_vector(backend, key, "final_norm_bias", fm->final_norm_bias, H);
	send_vector(backend, key, "inv_freq", fm->inv_freq, hd / 2);
	send_vector(backend, key, "inv_freq_local", fm->inv_freq_local, hd / 2);

	spec[FS_VERSION] = FORWARD_SPEC_VERSION;
	spec[FS_LAYERS] = m->layers;
	spec[FS_HIDDEN] = H;
	spec[FS_VOCAB] = m->vocab;
	spec[FS_HEADS] = fm->heads;
	spec[FS_KV_HEADS] = fm->kv_heads;
	spec[FS_HEAD_DIM] = hd;
	spec[FS_INTERMEDIATE] = I;
	spec[FS_LAYERNORM] = fm->layernorm;
	spec[FS_NORM_OFFSET] = fm->norm_offset;
	spec[FS_NORM_EPS] = fm->norm_eps;
	spec[FS_LEARNED_POSITIONS] = fm->learned_positions;
	spec[FS_ACTIVATION] = fm->activation;
	spec[FS_PLAIN_FFN] = fm->plain_ffn;
	spec[FS_TIED] = fm->tied;
	spec[FS_QK_NORM] = fm->qk_norm;
	spec[FS_SANDWICH] = fm->sandwich;
	spec[FS_SLIDING_WINDOW] = fm->sliding_window;
	spec[FS_ATTN_SCALE] = fm->attn_scale;
	spec[FS_ATTN_SOFTCAP] = fm->attn_softcap;
	spec[FS_FINAL_SOFTCAP] = fm->final_softcap;
	spec[FS_EMBED_SCALE] = m->embed_scale;
	host_compute_load_forward(backend, key, spec, nwords);
	pfree(spec);

	stats_compute_bytes(m->name, COMPUTE_PART_FORWARD, bytes);
	infer_log_info("pg_infer: compute backend \"%s\" now holds the forward weights of model "
				   "\"%s\" (" INT64_FORMAT " bytes of matrices)",
				   kind_name(backend), m->name, bytes);
}

/* What a step answers: last (hidden), logits (vocab), then the captures asked for. */
static size_t
step_answer_bytes(const ForwardRun *run)
{
	InferModel *m = run->m;
	size_t floats = (size_t) m->hidden + m->vocab;

	if (run->capture.act)
		floats += (size_t) m->layers * run->fm->intermediate;
	if (run->capture.resid)
		floats += (size_t) m->layers * m->hidden;
	return floats * sizeof(float);
}

bool
compute_forward_step(ForwardRun *run, const int32 *ids, int n)
{
	InferModel *m = run->m;
	char key[MODEL_NAME_MAX + 32];
	int want = (run->capture.act ? 1 : 0) | (run->capture.resid ? 2 : 0);
	size_t expect = step_answer_bytes(run);
	/* a run 'auto' gave the GPU asks as 'auto': the host may decline its first step */
	int kind = run->auto_host && run->n == 0 ? COMPUTE_AUTO : run->backend;
	const float *p;
	char *result;

	model_key(m, key, sizeof(key));
	result = host_compute_forward_step(kind, key, run->host_run, run->n, ids, n, want, expect);
	if (result == host_compute_declined)
		return false;
	if (result == NULL)
	{
		/* the backend lacks the model's forward weights (first use, or a restarted worker) */
		if (run->n > 0)
			ereport(ERROR, (errcode(ERRCODE_SYSTEM_ERROR),
							errmsg("the compute backend lost the KV cache of a run on model \"%s\" "
								   "(its worker restarted)",
								   m->name)));
		if (m->owned)
			model_with_source(m, compute_owned_load);
		else
			host_forward_load(m, key, kind);
		result = host_compute_forward_step(kind, key, run->host_run, run->n, ids, n, want, expect);
		if (result == host_compute_declined)
			return false;
		if (result == NULL)
			ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
							errmsg("the compute backend lost model \"%s\" right after loading it",
								   m->name)));
	}
	p = (const float *) result;
	memcpy(run->last, p, sizeof(float) * m->hidden);
	p += m->hidden;
	memcpy(run->logits, p, sizeof(float) * m->vocab);
	p += m->vocab;
	if (run->capture.act)
	{
		memcpy(run->capture.act, p, sizeof(float) * m->layers * run->fm->intermediate);
		p += (size_t) m->layers * run->fm->intermediate;
	}
	if (run->capture.resid)
		memcpy(run->capture.resid, p, sizeof(float) * m->layers * m->hidden);
	run->have_logits = true;
	run->n += n;
	pfree(result);
	return true;
}

/* ---- backend-owned models ---- */

#define OWNED_CHUNK (256 * 1024)

/*
 * One part of an owned model into the backend as tensor `role`: streamed by
 * the model's source when it can (host files, index pages), else read into
 * a transient buffer and sent in chunks (a model index being built).
 */
static void
stream_tensor(InferModel *m, const char *key, const char *part, int layer, const char *role,
			  int rows, int cols)
{
	bool f16 = m->gate_dtype == GATE_F16;
	size_t nbytes = (size_t) rows * cols * dtype_size(m->gate_dtype);
	char *buf;

	if (m->stream_part)
	{
		m->stream_part(m->read_state, m->name, part, layer, key, role, rows, cols, f16, nbytes);
		return;
	}
	buf = palloc_extended(Max(nbytes, 1), MCXT_ALLOC_HUGE);
	m->read_part(m->read_state, m->name, part, layer, buf, nbytes);
	for (size_t off = 0; off < nbytes || off == 0; off += OWNED_CHUNK)
	{
		host_compute_stage_chunk(COMPUTE_ONNX, key, role, rows, cols, f16, off, buf + off,
								 Min(OWNED_CHUNK, nbytes - off), nbytes);
		if (nbytes == 0)
			break;
	}
	pfree(buf);
}

static void
stream_matrix(InferModel *m, const char *key, const char *role, const Matrix *w)
{
	const char *wkey = forward_part_key(m, w);
	char part[128];

	if (wkey == NULL)
		return;
	snprintf(part, sizeof(part), "weight:%s", wkey);
	stream_tensor(m, key, part, 0, role, w->rows, w->hidden);
}

void
compute_owned_load(InferModel *m)
{
	char key[MODEL_NAME_MAX + 32];
	char role[64];
	int64 gate_bytes = 0;

	model_key(m, key, sizeof(key));
	/* "l0.gate" first: the host starts a new load with it */
	for (int l = 0; l < m->layers; l++)
	{
		snprintf(role, sizeof(role), "l%d.gate", l);
		stream_tensor(m, key, "gate", l, role, m->features[l], m->hidden);
		gate_bytes += (int64) m->features[l] * m->hidden * sizeof(float);
		INFER_CHECK_INTERRUPTS();
	}
	if (m->fwd)
	{
		ForwardModel *fm = m->fwd;

		for (int l = 0; l < m->layers; l++)
		{
			LayerWeights *w = &fm->layer[l];
			const Matrix *mats[] = {&w->q, &w->k, &w->v, &w->o, &w->up, &w->down};
			const char *names[] = {"q", "k", "v", "o", "up", "down"};

			for (int i = 0; i < (int) lengthof(mats); i++)
			{
				snprintf(role, sizeof(role), "l%d.%s", l, names[i]);
				stream_matrix(m, key, role, mats[i]);
			}
			INFER_CHECK_INTERRUPTS();
		}
		if (!fm->tied)
			stream_matrix(m, key, "lm_head", &fm->lm_head);
	}
	/* the gate pass's session, from the staged "l<i>.gate" (kept for the forward graph) */
	host_compute_commit_gate(COMPUTE_ONNX, key, m->layers, m->fwd != NULL);
	stats_compute_bytes(m->name, COMPUTE_PART_GATE, gate_bytes);
	infer_log_info("pg_infer: compute backend \"onnx\" owns model \"%s\" (" INT64_FORMAT
				   " bytes of gate rows; the heap holds " UINT64_FORMAT " bytes)",
				   m->name, gate_bytes, (uint64) m->bytes);
	/* vectors and embeddings from the heap, then the architecture: the forward graph */
	if (m->fwd)
		host_forward_load(m, key, COMPUTE_ONNX);
}

float *
compute_owned_columns(InferModel *m, const GateHit *hits, int n)
{
	char key[MODEL_NAME_MAX + 32];
	int32 *layers = palloc(sizeof(int32) * Max(n, 1));
	int32 *features = palloc(sizeof(int32) * Max(n, 1));
	float *cols;

	model_key(m, key, sizeof(key));
	for (int i = 0; i < n; i++)
	{
		layers[i] = hits[i].layer;
		features[i] = hits[i].feature;
	}
	cols = host_compute_columns(COMPUTE_ONNX, key, layers, features, n, m->hidden);
	if (cols == NULL)
	{
		model_with_source(m, compute_owned_load);
		cols = host_compute_columns(COMPUTE_ONNX, key, layers, features, n, m->hidden);
		if (cols == NULL)
			ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
							errmsg("the compute backend lost model \"%s\" right after loading it",
								   m->name)));
	}
	pfree(layers);
	pfree(features);
	return cols;
}

void
compute_owned_lens(InferModel *m, const float *x, int n, int32 *tokens)
{
	char key[MODEL_NAME_MAX + 32];
	int32 *got;

	if (n <= 0)
		return;
	model_key(m, key, sizeof(key));
	got = host_compute_lens(COMPUTE_ONNX, key, x, n, m->hidden);
	if (got == NULL)
	{
		model_with_source(m, compute_owned_load);
		got = host_compute_lens(COMPUTE_ONNX, key, x, n, m->hidden);
		if (got == NULL)
			ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
							errmsg("the compute backend lost model \"%s\" right after loading it",
								   m->name)));
	}
	for (int i = 0; i < n; i++)
	{
		if (got[i] < 0 || got[i] >= m->vocab)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
							errmsg("the compute backend returned token %d, outside model \"%s\"'s "
								   "vocabulary (%d)",
								   got[i], m->name, m->vocab)));
		tokens[i] = got[i];
	}
	pfree(got);
}

void
compute_owned_refuse(InferModel *m)
{
	ereport(
		ERROR,
		(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		 errmsg("model \"%s\" is owned by the onnx compute backend: infer.compute = '%s' cannot "
				"compute it",
				m->name, backend_name()),
		 errdetail("It was loaded under infer.compute = 'onnx', so its gate rows and forward "
				   "weights are in the backend's worker, not in the WASM heap."),
		 errhint("SET infer.compute = 'onnx' (or 'auto'). To compute it in WASM, load it "
				 "under infer.compute = 'wasm' in a new session (it then needs its weights' "
				 "bytes within infer.max_memory).")));
}

void
compute_owned_unsupported(InferModel *m, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s of model \"%s\" needs its lm_head, which the onnx compute backend owns",
					what, m->name),
			 errhint("Backend-owned models with an lm_head separate from the embeddings serve "
					 "this only from the heap: load the model under infer.compute = 'wasm'.")));
}

/*
 * Under infer.compute = 'onnx' a model loading now is backend-owned: its
 * gate rows and forward matrices go to the onnx backend only. GPT-2's fused
 * attention (split in C after loading) stays in the heap.
 */
static bool
owns_hook(const InferModel *m)
{
	return infer_compute == COMPUTE_ONNX && strcmp(m->family, "gpt2") != 0;
}

/* The weights C did not load go to the backend, from the source still open. */
static void
loaded_hook(InferModel *m)
{
	if (m->owned)
		compute_owned_load(m);
}

static const ModelLoadHooks compute_hooks = {
	.owns = owns_hook,
	.loaded = loaded_hook,
	.freed = compute_model_freed,
};

void
compute_init(void)
{
	model_register_hooks(&compute_hooks);
}
