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
 *
 * The forward step is in compute_forward.c, backend-owned models in
 * compute_owned.c; what the three share is in compute_internal.h.
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
void
compute_model_key(const InferModel *m, char *key, size_t size)
{
	snprintf(key, size, "%s#" UINT64_FORMAT, m->name, m->generation);
}

const char *
compute_kind_name(ComputeBackendKind kind)
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

void
compute_lost_after_load(const InferModel *m)
{
	ereport(ERROR,
			(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
			 errmsg("the compute backend lost model \"%s\" right after loading it", m->name)));
}

/* What infer.compute names now. */
const char *
compute_backend_name(void)
{
	return compute_kind_name(infer_compute);
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

	compute_model_key(m, key, sizeof(key));
	result = host_compute_gate_topk(backend, key, p, m->hidden, m->layers);
	if (result == host_compute_declined)
		return false;
	if (result == NULL && m->owned)
	{
		/* the worker restarted since the model was streamed into it: stream it again */
		model_with_source(m, compute_owned_load);
		result = host_compute_gate_topk(backend, key, p, m->hidden, m->layers);
		if (result == NULL)
			compute_lost_after_load(m);
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
					   compute_backend_name(), m->name, bytes);
		result = host_compute_gate_topk(backend, key, p, m->hidden, m->layers);
		if (result == host_compute_declined)
			return false;
		if (result == NULL)
			compute_lost_after_load(m);
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

	compute_model_key(m, key, sizeof(key));
	host_compute_drop(key);
	stats_compute_bytes(m->name, COMPUTE_PART_ALL, 0);
}

/*
 * Under infer.compute = 'onnx' a model loading now is backend-owned: its
 * gate rows and forward matrices go to the onnx backend only. GPT-2's fused
 * attention (split in C after loading) stays in the heap.
 */
static bool
ownable(const InferModel *m)
{
	return strcmp(m->family, "gpt2") != 0;
}

static bool
owns_hook(const InferModel *m)
{
	return infer_compute == COMPUTE_ONNX && ownable(m);
}

static const char *
outside_heap_hint(const InferModel *m)
{
	return !m->owned && ownable(m)
			   ? "load it after SET infer.compute = 'onnx': the onnx compute backend holds its "
				 "gate rows and forward matrices outside the heap"
			   : NULL;
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
	.outside_heap_hint = outside_heap_hint,
	.loaded = loaded_hook,
	.freed = compute_model_freed,
};

void
compute_init(void)
{
	model_register_hooks(&compute_hooks);
}
