/*
 * similar.c: similar_to(a text, b text, model text) -> float8
 *            infer_distance(a text, b text) -> float8
 *            infer_embedding(input text, model text) -> real[]
 *
 * Signature definition version 3 (similar.h, docs/index-am.md): a text's
 * signature is its own tokens (entity form mid-sentence, confidence 1) and,
 * for a model with inference weights, the tokens of the model's greedy
 * continuation of it, each with the probability the model gave it: what
 * the model knows about the text ('Paris' -> ' is the capital of France.').
 * Every token stands for a unit vector (its knowledge state; for a
 * browse-level model its centered input embedding) and weighs its
 * confidence x (-ln p_prior)^4, p_prior the model's prior of the token (its
 * mean next-token probability after a vocabulary sample), so generic words
 * weigh almost nothing and specific ones decide. similar_to is a symmetric
 * weighted late interaction: for every token of a its best cosine with a
 * token of b, weighted mean, and the same from b to a, the two averaged (in
 * [-1, 1]; 1 for the same set of tokens). similar_to (and <~) weighs a
 * continuation token by the probability of its own step instead of the
 * path's (signature_step_weights); infer_distance (<~>) = 1 - the same
 * score with path probabilities. The column index stores each row's tokens
 * and confidences and ranks rows with <~>'s function, so index scans order
 * rows exactly as sorts by <~> do.
 */
#include "pg_infer.h"

#include <math.h>

#include "deadline.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "varatt.h"

#include "compute.h"
#include "forward.h"
#include "knowledge.h"
#include "similar.h"
#include "stats.h"
#include "remote.h"

PG_FUNCTION_INFO_V1(infer_similar_to);
PG_FUNCTION_INFO_V1(infer_distance);
PG_FUNCTION_INFO_V1(infer_signatures);
PG_FUNCTION_INFO_V1(infer_signature_dots);
PG_FUNCTION_INFO_V1(infer_similar_to_many);
PG_FUNCTION_INFO_V1(infer_embedding);

/* The vocabulary's mean input embedding, computed once per loaded model. */
static const float *
embed_mean(InferModel *m)
{
	if (m->embed_mean == NULL)
	{
		double *acc = palloc0(sizeof(double) * m->hidden);
		float *row = palloc(sizeof(float) * m->hidden);
		float *mean = MemoryContextAlloc(m->cxt, sizeof(float) * m->hidden);

		for (int v = 0; v < m->vocab; v++)
		{
			size_t off = (size_t) v * m->hidden;

			if (m->embed_dtype == GATE_F32)
				memcpy(row, (const float *) m->embed + off, sizeof(float) * m->hidden);
			else
				f16_to_f32((const uint16 *) m->embed + off, row, m->hidden);
			for (int h = 0; h < m->hidden; h++)
				acc[h] += row[h];
		}
		for (int h = 0; h < m->hidden; h++)
			mean[h] = (float) (acc[h] / m->vocab);
		pfree(acc);
		pfree(row);
		m->embed_mean = mean;
	}
	return m->embed_mean;
}

int
signature_layer(const InferModel *m)
{
	if (m->fwd == NULL)
		return -1;
	for (int l = 0; l < m->layers; l++)
		if (m->band[l] == BAND_KNOWLEDGE)
			return l;
	return m->layers / 2;
}

/* Steps of the greedy continuation of each sample token that the prior averages over. */
#define PRIOR_STEPS 8

/*
 * Sample tokens, or texts, stepped together: on a host backend one batched
 * pass per step (forward_step_many); in wasm one run after another.
 */
#define FORWARD_BATCH 64

/*
 * The residual stream after `layer` of each of `count` tokens run alone (no
 * special tokens) into out (count x hidden). When `probs` is not NULL, the
 * model then continues each token greedily for PRIOR_STEPS steps (stopping
 * at EOS), and the softmax of every step's next-token logits is added to
 * probs (double, vocab); returns the number of distributions added.
 */
static int
run_tokens(InferModel *m, const int32 *ids, int count, int layer, float *out, double *probs)
{
	MemoryContext cxt =
		AllocSetContextCreate(CurrentMemoryContext, "pg_infer token state", ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	int steps = probs ? PRIOR_STEPS : 0;
	int added = 0;
	ForwardRun **runs = palloc(sizeof(ForwardRun *) * count);
	const int32 **next = palloc(sizeof(int32 *) * count);
	int32 *best = palloc(sizeof(int32) * count);
	int *ones = palloc(sizeof(int) * count);
	float *logits = probs ? palloc_extended(sizeof(float) * m->vocab, MCXT_ALLOC_HUGE) : NULL;
	int live = count;

	for (int i = 0; i < count; i++)
	{
		runs[i] = forward_begin(m, 1 + steps, 1, false, true);
		next[i] = &ids[i];
		ones[i] = 1;
	}
	forward_step_many(runs, next, ones, count);
	for (int i = 0; i < count; i++)
	{
		memcpy(out + (size_t) i * m->hidden, runs[i]->capture.resid + (size_t) layer * m->hidden,
			   sizeof(float) * m->hidden);
		/* the continuation's steps need no captures */
		runs[i]->capture.resid = NULL;
	}
	for (int s = 0; s < steps && live > 0; s++)
	{
		int kept = 0;

		for (int i = 0; i < live; i++)
		{
			double max, z = 0;
			int32 b = 0;

			forward_logits(runs[i], runs[i]->last, logits);
			for (int v = 0; v < m->vocab; v++)
				if (logits[v] > logits[b])
					b = v;
			max = logits[b];
			for (int v = 0; v < m->vocab; v++)
				z += exp(logits[v] - max);
			for (int v = 0; v < m->vocab; v++)
				probs[v] += exp(logits[v] - max) / z;
			added++;
			if (b == runs[i]->fm->eos || s + 1 == steps)
				continue;
			runs[kept] = runs[i];
			best[kept] = b;
			next[kept] = &best[kept];
			kept++;
		}
		live = kept;
		if (live > 0)
			forward_step_many(runs, next, ones, live);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return added;
}

/* Tokens of the vocabulary sample the knowledge states are centered on. */
#define STATE_SAMPLE 512

/*
 * The vocabulary sample's statistics, computed once per loaded model: the
 * mean knowledge state (what token states are centered on) and the prior,
 * the mean next-token distribution after each sample token read alone,
 * from which every token's specificity weight (-ln p_prior)^POWER comes.
 */
static void
sample_statistics(InferModel *m)
{
	int layer = signature_layer(m);
	int stride = Max(1, m->vocab / STATE_SAMPLE);
	double *acc = palloc0(sizeof(double) * m->hidden);
	double *prior = palloc_extended(sizeof(double) * m->vocab, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	float *v = palloc(sizeof(float) * FORWARD_BATCH * m->hidden);
	float *mean = MemoryContextAlloc(m->cxt, sizeof(float) * m->hidden);
	float *weight = MemoryContextAllocExtended(m->cxt, sizeof(float) * m->vocab, MCXT_ALLOC_HUGE);
	int32 batch[FORWARD_BATCH];
	int count = 0;
	int dists = 0;

	for (int t = 0; t < m->vocab;)
	{
		int k = 0;

		for (; k < FORWARD_BATCH && t < m->vocab; t += stride)
			batch[k++] = t;
		dists += run_tokens(m, batch, k, layer, v, prior);
		for (int i = 0; i < k; i++)
			for (int h = 0; h < m->hidden; h++)
				acc[h] += v[(size_t) i * m->hidden + h];
		count += k;
		INFER_CHECK_INTERRUPTS();
	}
	for (int h = 0; h < m->hidden; h++)
		mean[h] = (float) (acc[h] / count);
	for (int t = 0; t < m->vocab; t++)
		weight[t] = (float) pow(-log(Max(prior[t] / Max(dists, 1), SIGNATURE_PRIOR_FLOOR)),
								SIGNATURE_WEIGHT_POWER);
	pfree(acc);
	pfree(prior);
	pfree(v);
	m->state_mean = mean;
	m->token_weight = weight;
}

/* A token's residual minus the sample's mean, unit length, in m->cxt. */
static float *
unit_state(InferModel *m, const float *resid)
{
	float *v = MemoryContextAlloc(m->cxt, sizeof(float) * m->hidden);
	double norm = 0;

	for (int h = 0; h < m->hidden; h++)
	{
		v[h] = resid[h] - m->state_mean[h];
		norm += (double) v[h] * v[h];
	}
	norm = norm > 0 ? 1.0 / sqrt(norm) : 0;
	for (int h = 0; h < m->hidden; h++)
		v[h] = (float) (v[h] * norm);
	return v;
}

/*
 * Knowledge vectors of tokens: each token's residual stream after the first
 * layer of the knowledge band when the model reads it alone, minus the mean
 * of the same over a sample of the vocabulary (every vocab/512-th token),
 * unit length. A function of the token id only, so a column index can store
 * token ids; cached per loaded model. Computes those of `ids` not cached
 * yet, FORWARD_BATCH at a time.
 */
static void
token_states(InferModel *m, const int32 *ids, int n)
{
	int layer = signature_layer(m);
	int32 batch[FORWARD_BATCH];
	float *v;
	int k = 0;

	if (m->token_state == NULL)
		m->token_state = MemoryContextAllocZero(m->cxt, sizeof(float *) * m->vocab);
	if (m->state_mean == NULL)
		sample_statistics(m);
	v = palloc(sizeof(float) * FORWARD_BATCH * m->hidden);
	for (int i = 0; i <= n; i++)
	{
		/* a token twice in ids is computed once */
		if (i < n && m->token_state[ids[i]] == NULL)
		{
			bool dup = false;

			for (int j = 0; j < k; j++)
				dup |= batch[j] == ids[i];
			if (!dup)
				batch[k++] = ids[i];
		}
		if (k == FORWARD_BATCH || (i == n && k > 0))
		{
			run_tokens(m, batch, k, layer, v, NULL);
			for (int j = 0; j < k; j++)
				m->token_state[batch[j]] = unit_state(m, v + (size_t) j * m->hidden);
			k = 0;
		}
	}
	pfree(v);
}

float
signature_token_weight(InferModel *m, int32 id)
{
	if (signature_layer(m) < 0)
		return 1;
	if (m->token_weight == NULL)
		sample_statistics(m);
	return m->token_weight[id];
}

float *
signature_weights(InferModel *m, const Signature *sig)
{
	float *w = palloc(sizeof(float) * Max(sig->n, 1));

	for (int i = 0; i < sig->n; i++)
		w[i] = signature_weight(sig->conf[i], signature_token_weight(m, sig->ids[i]));
	return w;
}

float *
signature_step_weights(InferModel *m, const Signature *sig)
{
	float *w = palloc(sizeof(float) * Max(sig->n, 1));

	for (int i = 0; i < sig->n; i++)
	{
		float prev = i > 0 ? sig->conf[i - 1] : 1;
		float step = prev > 0 ? Min(sig->conf[i] / prev, 1.0f) : sig->conf[i];

		w[i] = signature_weight(step, signature_token_weight(m, sig->ids[i]));
	}
	return w;
}

float *
signature_vectors(InferModel *m, const int32 *ids, int n)
{
	const float *mean;
	float *out = palloc(sizeof(float) * (size_t) (n > 0 ? n : 1) * m->hidden);

	if (signature_layer(m) >= 0)
	{
		token_states(m, ids, n);
		for (int i = 0; i < n; i++)
			memcpy(out + (size_t) i * m->hidden, m->token_state[ids[i]], sizeof(float) * m->hidden);
		return out;
	}
	mean = embed_mean(m);
	for (int i = 0; i < n; i++)
	{
		float *v = out + (size_t) i * m->hidden;
		size_t off = (size_t) ids[i] * m->hidden;
		double norm = 0;

		if (m->embed_dtype == GATE_F32)
			memcpy(v, (const float *) m->embed + off, sizeof(float) * m->hidden);
		else
			f16_to_f32((const uint16 *) m->embed + off, v, m->hidden);
		for (int h = 0; h < m->hidden; h++)
		{
			v[h] -= mean[h];
			norm += (double) v[h] * v[h];
		}
		norm = norm > 0 ? 1.0 / sqrt(norm) : 0;
		for (int h = 0; h < m->hidden; h++)
			v[h] = (float) (v[h] * norm);
	}
	return out;
}

/* The dot product of two token vectors: one function, so every caller gets the same bits. */
float
signature_dot(const float *x, const float *y, int hidden)
{
	float dot = 0;

	for (int h = 0; h < hidden; h++)
		dot += x[h] * y[h];
	return dot;
}

double
signature_similarity_dots(const float *dots, const float *wa, int na, const float *wb, int nb)
{
	double *best_b;
	double sum_a = 0, sum_b = 0, weight_a = 0, weight_b = 0;

	if (na == 0 || nb == 0)
		return 0;
	best_b = palloc(sizeof(double) * nb);
	for (int j = 0; j < nb; j++)
		best_b[j] = -INFINITY;
	for (int i = 0; i < na; i++)
	{
		double best = -INFINITY;

		for (int j = 0; j < nb; j++)
		{
			double dot = dots[(size_t) i * nb + j];

			best = Max(best, dot);
			best_b[j] = Max(best_b[j], dot);
		}
		sum_a += (double) wa[i] * best;
		weight_a += wa[i];
	}
	for (int j = 0; j < nb; j++)
	{
		sum_b += (double) wb[j] * best_b[j];
		weight_b += wb[j];
	}
	pfree(best_b);
	if (!(weight_a > 0) || !(weight_b > 0))
		return 0;
	return (sum_a / weight_a + sum_b / weight_b) / 2;
}

double
signature_similarity_vectors(const float *a, const float *wa, int na, const float *b,
							 const float *wb, int nb, int hidden)
{
	float *dots;
	double s;

	if (na == 0 || nb == 0)
		return 0;
	dots = palloc(sizeof(float) * (size_t) na * nb);
	for (int i = 0; i < na; i++)
		for (int j = 0; j < nb; j++)
			dots[(size_t) i * nb + j] =
				signature_dot(a + (size_t) i * hidden, b + (size_t) j * hidden, hidden);
	s = signature_similarity_dots(dots, wa, na, wb, nb);
	pfree(dots);
	return s;
}

double
signature_similarity(InferModel *m, const Signature *a, const Signature *b)
{
	float *va = signature_vectors(m, a->ids, a->n);
	float *vb = signature_vectors(m, b->ids, b->n);
	float *wa = signature_weights(m, a);
	float *wb = signature_weights(m, b);
	double s = signature_similarity_vectors(va, wa, a->n, vb, wb, b->n, m->hidden);

	pfree(va);
	pfree(vb);
	pfree(wa);
	pfree(wb);
	return s;
}

/* Adds a token to a signature, or raises its confidence if it is there. */
static void
signature_add(Signature *sig, int32 id, float conf)
{
	for (int j = 0; j < sig->n; j++)
		if (sig->ids[j] == id)
		{
			sig->conf[j] = Max(sig->conf[j], conf);
			return;
		}
	if (sig->n < SIGNATURE_SIZE)
	{
		sig->ids[sig->n] = id;
		sig->conf[sig->n] = conf;
		sig->n++;
	}
}

/*
 * The model's greedy continuation of each of `count` texts (their entity
 * forms, as prompts), stepped together: up to SIGNATURE_CONTINUATION tokens
 * each, stopping before EOS or a token with a line break, each added to the
 * text's signature with its path probability. A text of more than
 * SIGNATURE_PROMPT_MAX tokens (or without room in the model's context) gets
 * no continuation.
 */
static void
signature_continue(InferModel *m, char **forms, Signature **sigs, int count)
{
	MemoryContext cxt =
		AllocSetContextCreate(CurrentMemoryContext, "pg_infer signature", ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	ForwardRun **runs = palloc(sizeof(ForwardRun *) * count);
	const int32 **next = palloc(sizeof(int32 *) * count);
	int *n = palloc(sizeof(int) * count);
	double *path = palloc(sizeof(double) * count);
	int32 *best = palloc(sizeof(int32) * count);
	Signature **dst = palloc(sizeof(Signature *) * count);
	float *logits = palloc_extended(sizeof(float) * m->vocab, MCXT_ALLOC_HUGE);
	int live = 0;

	for (int i = 0; i < count; i++)
	{
		int len;
		int32 *ids = forward_tokens(m, cstring_to_text(forms[i]), &len);

		if (len > SIGNATURE_PROMPT_MAX ||
			(m->fwd->max_positions > 0 && len + SIGNATURE_CONTINUATION > m->fwd->max_positions))
			continue;
		runs[live] = forward_begin(m, len + SIGNATURE_CONTINUATION, len, false, false);
		next[live] = ids;
		n[live] = len;
		path[live] = 1;
		dst[live] = sigs[i];
		live++;
	}
	if (live > 0)
		forward_step_many(runs, next, n, live);
	for (int s = 0; s < SIGNATURE_CONTINUATION && live > 0; s++)
	{
		int kept = 0;

		for (int i = 0; i < live; i++)
		{
			double max, z = 0;
			int32 b = 0;
			DecodedToken *t;

			forward_logits(runs[i], runs[i]->last, logits);
			for (int v = 0; v < m->vocab; v++)
				if (logits[v] > logits[b])
					b = v;
			max = logits[b];
			for (int v = 0; v < m->vocab; v++)
				z += exp(logits[v] - max);
			if (b == runs[i]->fm->eos)
				continue;
			t = decode_tokens(m, &b, 1);
			if (strchr(t->raw, '\n') != NULL || strchr(t->raw, '\r') != NULL)
				continue;
			path[i] *= 1.0 / z;
			signature_add(dst[i], b, (float) path[i]);
			runs[kept] = runs[i];
			path[kept] = path[i];
			dst[kept] = dst[i];
			best[kept] = b;
			next[kept] = &best[kept];
			n[kept] = 1;
			kept++;
		}
		live = kept;
		if (live > 0 && s + 1 < SIGNATURE_CONTINUATION)
			forward_step_many(runs, next, n, live);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
}

/*
 * The signatures of recent texts, per loaded model: a direct-mapped table
 * of SIGNATURE_CACHE slots by a hash of the text, each holding the text and
 * its signature (a new text in a taken slot replaces it); texts over
 * SIGNATURE_CACHE_TEXT_MAX bytes are computed every time. A signature is a
 * function of the text and the model alone, and computing one is a forward
 * pass, which a sort by <~> or similar_to_many would otherwise repeat for
 * every query.
 */
#define SIGNATURE_CACHE 4096
/* longer texts are not kept: the cache stays under about 12 MB */
#define SIGNATURE_CACHE_TEXT_MAX 1024

typedef struct SignatureCacheEntry
{
	Size len;
	char *text;
	int n;
	int32 *ids;
	float *conf;
} SignatureCacheEntry;

static uint32
text_hash(const char *s, Size len)
{
	uint32 h = 2166136261u; /* FNV-1a */

	for (Size i = 0; i < len; i++)
		h = (h ^ (unsigned char) s[i]) * 16777619u;
	return h;
}

/* The signature of a text from the cache into out; false when it is not there. */
static bool
signature_cached(InferModel *m, text *input, Signature *out)
{
	Size len = VARSIZE_ANY_EXHDR(input);
	const char *data = VARDATA_ANY(input);
	SignatureCacheEntry *e;

	if (m->signature_cache == NULL)
		return false;
	e = m->signature_cache[text_hash(data, len) % SIGNATURE_CACHE];
	if (e == NULL || e->len != len || memcmp(e->text, data, len) != 0)
		return false;
	out->n = e->n;
	memcpy(out->ids, e->ids, sizeof(int32) * e->n);
	memcpy(out->conf, e->conf, sizeof(float) * e->n);
	return true;
}

/* Keeps a text's signature in the cache (in its slot, replacing what was there). */
static void
signature_remember(InferModel *m, text *input, const Signature *sig)
{
	Size len = VARSIZE_ANY_EXHDR(input);
	const char *data = VARDATA_ANY(input);
	uint32 slot = text_hash(data, len) % SIGNATURE_CACHE;
	SignatureCacheEntry *e;

	if (len > SIGNATURE_CACHE_TEXT_MAX)
		return;
	if (m->signature_cache == NULL)
		m->signature_cache =
			MemoryContextAllocZero(m->cxt, sizeof(SignatureCacheEntry *) * SIGNATURE_CACHE);
	e = m->signature_cache[slot];
	if (e != NULL)
	{
		pfree(e->text);
		pfree(e->ids);
		pfree(e->conf);
		pfree(e);
	}
	e = MemoryContextAlloc(m->cxt, sizeof(SignatureCacheEntry));
	e->len = len;
	e->text = MemoryContextAlloc(m->cxt, Max(len, 1));
	memcpy(e->text, data, len);
	e->n = sig->n;
	e->ids = MemoryContextAlloc(m->cxt, sizeof(int32) * Max(sig->n, 1));
	e->conf = MemoryContextAlloc(m->cxt, sizeof(float) * Max(sig->n, 1));
	memcpy(e->ids, sig->ids, sizeof(int32) * sig->n);
	memcpy(e->conf, sig->conf, sizeof(float) * sig->n);
	m->signature_cache[slot] = e;
}

/*
 * The signatures of `count` texts (at most FORWARD_BATCH): cached ones from
 * the cache, the others' own tokens, then their continuations stepped
 * together.
 */
static void
signatures_of(InferModel *m, text **inputs, int count, const char *what, Signature *out)
{
	char **forms = palloc(sizeof(char *) * count);
	Signature **missed = palloc(sizeof(Signature *) * count);
	int *which = palloc(sizeof(int) * count);
	int nmissed = 0;

	for (int i = 0; i < count; i++)
	{
		int n;
		int32 *ids;

		if (signature_cached(m, inputs[i], &out[i]))
			continue;
		forms[nmissed] = entity_form(m, inputs[i], what, &ids, &n);
		out[i].n = 0;
		for (int t = 0; t < n; t++)
			signature_add(&out[i], ids[t], 1);
		pfree(ids);
		missed[nmissed] = &out[i];
		which[nmissed++] = i;
	}
	if (m->fwd != NULL && nmissed > 0)
		signature_continue(m, forms, missed, nmissed);
	for (int j = 0; j < nmissed; j++)
	{
		signature_remember(m, inputs[which[j]], missed[j]);
		pfree(forms[j]);
	}
	pfree(forms);
	pfree(missed);
	pfree(which);
}

int
feature_signature(InferModel *m, text *input, const char *what, Signature *out)
{
	signatures_of(m, &input, 1, what, out);
	return out->n;
}

void
feature_signatures_batch(InferModel *m, text **inputs, int n, Signature *out)
{
	for (int i = 0; i < n; i += FORWARD_BATCH)
	{
		signatures_of(m, inputs + i, Min(FORWARD_BATCH, n - i), "text", out + i);
		/* forward passes are long work */
		INFER_CHECK_INTERRUPTS();
	}
}

/*
 * The last signature computed for each argument of a call site, kept in
 * fn_extra: in `ORDER BY col <~> 'query'` one side is the same text for
 * every row, and recomputing its signature (a forward pass) per row would
 * double the cost of every distance.
 */
typedef struct CachedSignature
{
	uint64 generation; /* of the model: a re-created model has a new one */
	text *input;
	Signature sig;
	float *vectors; /* n x hidden unit vectors, in fn_mcxt */
	float *weights; /* n weights, in fn_mcxt */
} CachedSignature;

static CachedSignature *
cached_signature(FunctionCallInfo fcinfo, CachedSignature *cache, InferModel *m, text *input,
				 const char *what, bool step)
{
	Size len = VARSIZE_ANY_EXHDR(input);

	if (cache->input == NULL || cache->generation != m->generation ||
		VARSIZE_ANY_EXHDR(cache->input) != len ||
		memcmp(VARDATA_ANY(cache->input), VARDATA_ANY(input), len) != 0)
	{
		float *v, *w;
		int n;

		/* a sort by <~> computes one signature per row: a statement_timeout checkpoint */
		INFER_CHECK_INTERRUPTS();
		stats_cache(false);
		n = feature_signature(m, input, what, &cache->sig);
		v = signature_vectors(m, cache->sig.ids, n);
		w = step ? signature_step_weights(m, &cache->sig) : signature_weights(m, &cache->sig);
		if (cache->vectors)
			pfree(cache->vectors);
		if (cache->weights)
			pfree(cache->weights);
		cache->vectors = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt,
											sizeof(float) * (size_t) Max(n, 1) * m->hidden);
		memcpy(cache->vectors, v, sizeof(float) * (size_t) n * m->hidden);
		cache->weights = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(float) * Max(n, 1));
		memcpy(cache->weights, w, sizeof(float) * n);
		pfree(v);
		pfree(w);
		if (cache->input)
			pfree(cache->input);
		cache->input = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, VARHDRSZ + len);
		SET_VARSIZE(cache->input, VARHDRSZ + len);
		memcpy(VARDATA(cache->input), VARDATA_ANY(input), len);
		cache->generation = m->generation;
	}
	else
		stats_cache(true);
	return cache;
}

/*
 * similar_to and <~ (step) weigh continuation tokens by their step
 * confidence; infer_distance (<~>, !step) by their confidence, as the
 * column index does.
 */
static double
similar_texts(FunctionCallInfo fcinfo, int model_argno, const char *function, bool step)
{
	text *a = required_text(fcinfo, 0, "a");
	text *b = required_text(fcinfo, 1, "b");
	InferModel *m;
	CachedSignature *cache = fcinfo->flinfo->fn_extra;
	CachedSignature *ca, *cb;
	double score;

	stats_begin(function);
	m = model_arg(fcinfo, model_argno);

	if (cache == NULL)
		cache = fcinfo->flinfo->fn_extra =
			MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, 2 * sizeof(CachedSignature));
	ca = cached_signature(fcinfo, &cache[0], m, a, "a", step);
	cb = cached_signature(fcinfo, &cache[1], m, b, "b", step);
	score = signature_similarity_vectors(ca->vectors, ca->weights, ca->sig.n, cb->vectors,
										 cb->weights, cb->sig.n, m->hidden);
	stats_end(m, 1);
	return score;
}

/* similar_to(a, b, model); infer_similarity(a, b) (the <~ operator) with the default model */
Datum
infer_similar_to(PG_FUNCTION_ARGS)
{
	REMOTE_DISPATCH("similar_to", 2);
	PG_RETURN_FLOAT8(
		similar_texts(fcinfo, 2, PG_NARGS() > 2 ? "similar_to" : "infer_similarity", true));
}

/* infer_distance(a, b): with infer.default_model, as the <~> operator is */
Datum
infer_distance(PG_FUNCTION_ARGS)
{
	/*
	 * A text with no signature (empty, or longer than a query may be) has no
	 * distance, like NULL: the column index stores such rows as it stores
	 * NULLs, so an index scan and a sort by <~> agree on them too.
	 */
	if (!PG_ARGISNULL(0) && !text_has_signature(PG_GETARG_TEXT_PP(0)))
		PG_RETURN_NULL();
	if (!PG_ARGISNULL(1) && !text_has_signature(PG_GETARG_TEXT_PP(1)))
		PG_RETURN_NULL();
	REMOTE_DISPATCH("infer_distance", 2);
	PG_RETURN_FLOAT8(1.0 - similar_texts(fcinfo, 2, "infer_distance", false));
}

/*
 * infer_signatures(inputs text[], model text)
 *   -> TABLE(ord int, layer int, feature int, score float8)
 *
 * The signature of every element (1-based ord), computed with the batched
 * kernel: what an index build does for its rows.
 */
Datum
infer_signatures(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ArrayType *arr;
	Datum *elems;
	bool *nulls;
	int n;
	InferModel *m;
	text **inputs;
	Signature *sigs;
	int64 rows = 0;

	REMOTE_DISPATCH("infer_signatures", 1);

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("inputs must not be NULL")));
	stats_begin("infer_signatures");
	arr = PG_GETARG_ARRAYTYPE_P(0);
	deconstruct_array_builtin(arr, TEXTOID, &elems, &nulls, &n);
	m = model_arg(fcinfo, 1);
	inputs = palloc(sizeof(text *) * (n > 0 ? n : 1));
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
							errmsg("inputs must not contain NULL (element %d)", i + 1)));
		inputs[i] = DatumGetTextPP(elems[i]);
	}
	sigs = palloc_extended(sizeof(Signature) * (n > 0 ? n : 1), MCXT_ALLOC_HUGE);
	feature_signatures_batch(m, inputs, n, sigs);

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < n; i++)
		for (int j = 0; j < sigs[i].n; j++)
		{
			Datum values[4];
			bool isnull[4] = {false, false, false, false};

			values[0] = Int32GetDatum(i + 1);
			/* a token signature: no layer, the token id, its confidence */
			isnull[1] = true;
			values[1] = (Datum) 0;
			values[2] = Int32GetDatum(sigs[i].ids[j]);
			values[3] = Float8GetDatum((double) sigs[i].conf[j]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnull);
			rows++;
		}
	stats_end(m, rows);
	PG_RETURN_VOID();
}

/*
 * infer_signature_dots(query text, tokens int[], model text)
 *   -> TABLE(token int, weight real, dots real[])
 *
 * For every token (in the given order), its specificity weight
 * (signature_token_weight) and the dot products of its signature vector with
 * the query's signature tokens' vectors (signature_dot), in the order of the
 * query's signature (infer_signatures): what an index scan needs to rank
 * stored signatures against the query (index_scan.c). A client's index on a
 * remote model asks the server for them (remote_token_dots), so both rank
 * with the same bits.
 */
Datum
infer_signature_dots(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	InferModel *m;
	text *query;
	Datum *elems;
	bool *nulls;
	int n;
	Signature *qsig = palloc(sizeof(Signature));
	float *qvec;
	Datum *dots;

	REMOTE_DISPATCH("infer_signature_dots", 2);

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						errmsg("query and tokens must not be NULL")));
	stats_begin("infer_signature_dots");
	query = PG_GETARG_TEXT_PP(0);
	deconstruct_array_builtin(PG_GETARG_ARRAYTYPE_P(1), INT4OID, &elems, &nulls, &n);
	m = model_arg(fcinfo, 2);
	qsig->n = 0;
	if (text_has_signature(query))
		feature_signature(m, query, "query", qsig);
	qvec = signature_vectors(m, qsig->ids, qsig->n);
	dots = palloc(sizeof(Datum) * Max(qsig->n, 1));
	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < n; i++)
	{
		int32 t;
		float *v;
		Datum values[3];
		bool isnull[3] = {false, false, false};

		if (nulls[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
							errmsg("tokens must not contain NULL (element %d)", i + 1)));
		t = DatumGetInt32(elems[i]);
		if (t < 0 || t >= m->vocab)
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("token %d is outside model \"%s\" (vocabulary of %d)", t,
								   m->name, m->vocab)));
		v = signature_vectors(m, &t, 1);
		for (int j = 0; j < qsig->n; j++)
			dots[j] = Float4GetDatum(signature_dot(v, qvec + (size_t) j * m->hidden, m->hidden));
		pfree(v);
		values[0] = Int32GetDatum(t);
		values[1] = Float4GetDatum(signature_token_weight(m, t));
		values[2] = PointerGetDatum(construct_array_builtin(dots, qsig->n, FLOAT4OID));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, isnull);
		INFER_CHECK_INTERRUPTS();
	}
	stats_end(m, n);
	PG_RETURN_VOID();
}

/* Candidates whose signatures one batched gate pass computes. */
#define SIMILAR_MANY_BATCH 256

/*
 * similar_to_many(candidates text[], query text, model text) -> float8[]
 *
 * similar_to(candidate, query, model) for every element, in the array's
 * shape (NULL elements give NULL scores), with the signatures computed by
 * the batched gate kernel SIMILAR_MANY_BATCH candidates at a time (the
 * query's with the first batch). NULL candidates: NULL.
 */
Datum
infer_similar_to_many(PG_FUNCTION_ARGS)
{
	ArrayType *arr;
	text *query;
	Datum *elems;
	bool *nulls;
	int n;
	InferModel *m;
	Signature *query_sig = palloc(sizeof(Signature));
	float *query_vec;
	float *query_w;
	Datum *scores;
	ArrayType *result;

	REMOTE_DISPATCH("similar_to_many", 2);

	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	query = required_text(fcinfo, 1, "query");
	stats_begin("similar_to_many");
	arr = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(arr) > 1)
		ereport(ERROR, (errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
						errmsg("candidates must be a one-dimensional array, not %d-dimensional",
							   ARR_NDIM(arr))));
	deconstruct_array_builtin(arr, TEXTOID, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i] && VARSIZE_ANY_EXHDR(DatumGetTextPP(elems[i])) == 0)
			ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
							errmsg("candidates[%d] must not be empty", ARR_LBOUND(arr)[0] + i),
							errhint("Pass NULL for a candidate to skip: its score is NULL.")));
	m = model_arg(fcinfo, 2);
	feature_signature(m, query, "query", query_sig);
	query_vec = signature_vectors(m, query_sig->ids, query_sig->n);
	query_w = signature_step_weights(m, query_sig);
	scores = palloc(sizeof(Datum) * (n > 0 ? n : 1));
	for (int b0 = 0; b0 < n; b0 += SIMILAR_MANY_BATCH)
	{
		int nb = Min(SIMILAR_MANY_BATCH, n - b0);
		text **inputs = palloc(sizeof(text *) * nb);
		int *index = palloc(sizeof(int) * nb);
		Signature *sigs = palloc_extended(sizeof(Signature) * nb, MCXT_ALLOC_HUGE);
		int ni = 0;

		for (int i = b0; i < b0 + nb; i++)
			if (!nulls[i])
			{
				index[ni] = i;
				inputs[ni++] = DatumGetTextPP(elems[i]);
			}
		feature_signatures_batch(m, inputs, ni, sigs);
		for (int j = 0; j < ni; j++)
		{
			float *v = signature_vectors(m, sigs[j].ids, sigs[j].n);
			float *w = signature_step_weights(m, &sigs[j]);

			scores[index[j]] = Float8GetDatum(signature_similarity_vectors(
				v, w, sigs[j].n, query_vec, query_w, query_sig->n, m->hidden));
			pfree(v);
			pfree(w);
		}
		pfree(inputs);
		pfree(index);
		pfree(sigs);
	}
	if (n == 0)
		result = construct_empty_array(FLOAT8OID);
	else
	{
		int dims[1] = {n};
		int lbs[1] = {ARR_LBOUND(arr)[0]};

		result = construct_md_array(scores, nulls, 1, dims, lbs, FLOAT8OID, sizeof(float8),
									FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	}
	stats_end(m, n);
	PG_RETURN_ARRAYTYPE_P(result);
}

/*
 * infer_embedding(input text, model text) -> real[]
 *
 * The text's embedding as similar_to sees it: the mean of its tokens'
 * input embeddings (no special tokens) x embed_scale, hidden_size values.
 * pg_infer_vector's infer_embed() casts it to pgvector's vector.
 */
Datum
infer_embedding(PG_FUNCTION_ARGS)
{
	text *input = required_text(fcinfo, 0, "input");
	InferModel *m;
	float *q;
	Datum *values;
	ArrayType *result;

	REMOTE_DISPATCH("infer_embedding", 1);

	stats_begin("infer_embedding");
	m = model_arg(fcinfo, 1);
	q = query_vector(m, input, "input", false, QUERY_AVERAGE);
	values = palloc(sizeof(Datum) * m->hidden);
	for (int h = 0; h < m->hidden; h++)
		values[h] = Float4GetDatum(q[h]);
	result = construct_array_builtin(values, m->hidden, FLOAT4OID);
	stats_end(m, 1);
	PG_RETURN_ARRAYTYPE_P(result);
}

PG_FUNCTION_INFO_V1(infer_warmup);

/*
 * infer_warmup(model_name text, entities text[]) -> text
 *
 * Loads the model into this backend (and, where infer.compute sends gate
 * passes to a host backend, into that backend), then runs one batched
 * signature pass over `entities` (NULL or empty: none), which tokenizes
 * them and decodes their concepts once so later calls find them cached.
 */
Datum
infer_warmup(PG_FUNCTION_ARGS)
{
	char *name = text_to_cstring(required_text(fcinfo, 0, "model name"));
	bool was_loaded;
	InferModel *m;
	int n = 0;

	REMOTE_DISPATCH("infer_warmup", 0);

	model_check_name(name);
	was_loaded = model_find_loaded(name) != NULL;
	stats_begin("infer_warmup");
	m = model_get(PG_GETARG_TEXT_PP(0));
	if (!PG_ARGISNULL(1))
	{
		Datum *elems;
		bool *nulls;
		int count;
		text **inputs;

		deconstruct_array_builtin(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, &elems, &nulls, &count);
		inputs = palloc(sizeof(text *) * (count + 1));
		for (int i = 0; i < count; i++)
			if (!nulls[i] && text_has_signature(DatumGetTextPP(elems[i])))
				inputs[n++] = DatumGetTextPP(elems[i]);
		if (n > 0)
		{
			Signature *sigs = palloc_extended(sizeof(Signature) * n, MCXT_ALLOC_HUGE);

			feature_signatures_batch(m, inputs, n, sigs);
			/* token weights, knowledge-state mean: one pass over a vocabulary sample */
			(void) signature_token_weight(m, sigs[0].n > 0 ? sigs[0].ids[0] : 0);
		}
	}
	stats_end(m, n);
	PG_RETURN_TEXT_P(
		cstring_to_text(psprintf("model '%s' %s (%zu bytes), %d entities warmed", name,
								 was_loaded ? "already loaded" : "loaded", m->bytes, n)));
}
