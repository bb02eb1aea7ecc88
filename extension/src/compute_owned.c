/*
 * compute_owned.c: backend-owned models (infer.compute = 'onnx' at load):
 * their gate rows and forward matrices go to the onnx backend only,
 * streamed from the model's source (host files, index pages), and the few
 * operations that would read them in C ask the backend instead (W_down
 * columns, the logit lens) or refuse with 55000.
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

	compute_model_key(m, key, sizeof(key));
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
		compute_send_forward(m, key, COMPUTE_ONNX);
}

float *
compute_owned_columns(InferModel *m, const GateHit *hits, int n)
{
	char key[MODEL_NAME_MAX + 32];
	int32 *layers = palloc(sizeof(int32) * Max(n, 1));
	int32 *features = palloc(sizeof(int32) * Max(n, 1));
	float *cols;

	compute_model_key(m, key, sizeof(key));
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
			compute_lost_after_load(m);
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
	compute_model_key(m, key, sizeof(key));
	got = host_compute_lens(COMPUTE_ONNX, key, x, n, m->hidden);
	if (got == NULL)
	{
		model_with_source(m, compute_owned_load);
		got = host_compute_lens(COMPUTE_ONNX, key, x, n, m->hidden);
		if (got == NULL)
			compute_lost_after_load(m);
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
				m->name, compute_backend_name()),
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
