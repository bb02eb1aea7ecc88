/*
 * compute_forward.c: the forward step behind the compute seam (compute.h):
 * which backend a run steps on, a run's id and KV-cache lifetime on a host
 * backend, handing the backend the model's forward weights from C's heap,
 * and one host call per step (prefill of n tokens or one decode token), or
 * per batch of runs stepped together (compute_forward_steps).
 */
#include "pg_infer.h"

#include "deadline.h"

#include "miscadmin.h"
#include "utils/memutils.h"

#include "compute.h"
#include "compute_internal.h"
#include "guc.h"
#include "host.h"
#include "stats.h"

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
void
compute_send_forward(InferModel *m, const char *key, int backend)
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
				   compute_kind_name(backend), m->name, bytes);
}

/* What a step answers per run: last (hidden), logits (vocab), then the captures asked for. */
static size_t
step_answer_bytes(const ForwardRun *run, bool acts, bool resids)
{
	InferModel *m = run->m;
	size_t floats = (size_t) m->hidden + m->vocab;

	if (acts)
		floats += (size_t) m->layers * run->fm->intermediate;
	if (resids)
		floats += (size_t) m->layers * m->hidden;
	return floats * sizeof(float);
}

/*
 * The backend lacks the model's forward weights (first use, or a restarted
 * worker): a run that had stepped there lost its KV cache with them (58000
 * has no retry to offer: the run must start over); otherwise hand the
 * weights over (an owned model's from its source) so the step can be asked
 * again.
 */
static void
reload_forward(InferModel *m, const char *key, int kind, bool stepped_before)
{
	if (stepped_before)
		ereport(ERROR, (errcode(ERRCODE_SYSTEM_ERROR),
						errmsg("the compute backend lost the KV cache of a run on model \"%s\" "
							   "(its worker restarted)",
							   m->name)));
	if (m->owned)
		model_with_source(m, compute_owned_load);
	else
		compute_send_forward(m, key, kind);
}

/* Copies one run's part of a step answer into the run; returns the part's end. */
static const float *
take_step_answer(ForwardRun *run, const float *p, bool acts, bool resids)
{
	InferModel *m = run->m;

	memcpy(run->last, p, sizeof(float) * m->hidden);
	p += m->hidden;
	memcpy(run->logits, p, sizeof(float) * m->vocab);
	p += m->vocab;
	if (acts)
	{
		if (run->capture.act)
			memcpy(run->capture.act, p, sizeof(float) * m->layers * run->fm->intermediate);
		p += (size_t) m->layers * run->fm->intermediate;
	}
	if (resids)
	{
		if (run->capture.resid)
			memcpy(run->capture.resid, p, sizeof(float) * m->layers * m->hidden);
		p += (size_t) m->layers * m->hidden;
	}
	run->have_logits = true;
	return p;
}

bool
compute_forward_step(ForwardRun *run, const int32 *ids, int n)
{
	InferModel *m = run->m;
	char key[MODEL_NAME_MAX + 32];
	int want = (run->capture.act ? 1 : 0) | (run->capture.resid ? 2 : 0);
	size_t expect = step_answer_bytes(run, run->capture.act != NULL, run->capture.resid != NULL);
	/* a run 'auto' gave the GPU asks as 'auto': the host may decline its first step */
	int kind = run->auto_host && run->n == 0 ? COMPUTE_AUTO : run->backend;
	char *result;

	compute_model_key(m, key, sizeof(key));
	result = host_compute_forward_step(kind, key, run->host_run, run->n, ids, n, want, expect);
	if (result == host_compute_declined)
		return false;
	if (result == NULL)
	{
		reload_forward(m, key, kind, run->n > 0);
		result = host_compute_forward_step(kind, key, run->host_run, run->n, ids, n, want, expect);
		if (result == host_compute_declined)
			return false;
		if (result == NULL)
			compute_lost_after_load(m);
	}
	take_step_answer(run, (const float *) result, run->capture.act != NULL,
					 run->capture.resid != NULL);
	run->n += n;
	pfree(result);
	return true;
}

void
compute_forward_steps(ForwardRun **runs, const int32 *const *ids, const int *n, int count)
{
	InferModel *m = runs[0]->m;
	int kind = runs[0]->backend;
	char key[MODEL_NAME_MAX + 32];
	bool acts = false, resids = false;
	int32 *run_ids = palloc(sizeof(int32) * count);
	int32 *pos = palloc(sizeof(int32) * count);
	int32 *counts = palloc(sizeof(int32) * count);
	int32 *flat;
	int total = 0, at = 0;
	size_t per_run;
	const float *p;
	char *result;

	/* one answer layout for the batch: captures when any run asked */
	for (int i = 0; i < count; i++)
	{
		acts |= runs[i]->capture.act != NULL;
		resids |= runs[i]->capture.resid != NULL;
		run_ids[i] = runs[i]->host_run;
		pos[i] = runs[i]->n;
		counts[i] = n[i];
		total += n[i];
	}
	flat = palloc(sizeof(int32) * total);
	for (int i = 0; i < count; i++)
	{
		memcpy(flat + at, ids[i], sizeof(int32) * n[i]);
		at += n[i];
	}
	per_run = step_answer_bytes(runs[0], acts, resids);
	compute_model_key(m, key, sizeof(key));
	result = host_compute_forward_steps(kind, key, count, run_ids, pos, counts, flat,
										(acts ? 1 : 0) | (resids ? 2 : 0), per_run * count);
	if (result == NULL)
	{
		bool stepped_before = false;

		for (int i = 0; i < count; i++)
			stepped_before |= runs[i]->n > 0;
		reload_forward(m, key, kind, stepped_before);
		result = host_compute_forward_steps(kind, key, count, run_ids, pos, counts, flat,
											(acts ? 1 : 0) | (resids ? 2 : 0), per_run * count);
		if (result == NULL)
			compute_lost_after_load(m);
	}
	p = (const float *) result;
	for (int i = 0; i < count; i++)
	{
		p = take_step_answer(runs[i], p, acts, resids);
		runs[i]->n += n[i];
	}
	pfree(result);
	pfree(flat);
	pfree(run_ids);
	pfree(pos);
	pfree(counts);
}
