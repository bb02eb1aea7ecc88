/*
 * index_scan.c: ORDER BY col <~> 'query' served by an `infer` index.
 *
 * distance(row) = 1 - similarity(row's signature, query's signature), as
 * infer_distance computes it (similar.c, signature definition version 3).
 * Each row's signature (its tokens and confidences) was computed once, when the row was
 * indexed; the scan computes the query's token vectors once, scores every
 * live row from its stored tokens, and returns rows by distance ascending,
 * ties in TID order, then rows whose value is NULL (distance NULL) in TID
 * order, as a sort of the same distances puts them. Exact by construction:
 * the same function on the same tokens. What the index saves is the
 * tokenizing of every row per query; the cost is one pass over the ROWS
 * chain and (query tokens x row tokens) dot products per row
 * (docs/index-am.md).
 */
#include "pg_infer.h"

#include "deadline.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "guc.h"
#include "index.h"
#include "remote.h"

typedef struct Ranked
{
	ItemPointerData tid;
	bool isnull;
	double distance;
} Ranked;

typedef struct ScanState
{
	MemoryContext cxt;
	bool query_null;
	text *query;
	InferMetaData meta;
	InferModel *m;
	/* <~> under another model than the index's: every row, ranked by that model */
	InferModel *other;
	/* the index's model is remote: its server computes the query's dots */
	bool remote;
	Ranked *ranked;
	int nranked;
	int rankpos;
} ScanState;

/* distance ascending, NULL last, ties by TID */
static int
cmp_ranked(const void *pa, const void *pb)
{
	const Ranked *a = pa, *b = pb;

	if (a->isnull != b->isnull)
		return a->isnull ? 1 : -1;
	if (!a->isnull && a->distance != b->distance)
		return a->distance < b->distance ? -1 : 1;
	return ItemPointerCompare((ItemPointer) &a->tid, (ItemPointer) &b->tid);
}

static Ranked *
next_slot(ScanState *s, int *cap)
{
	if (s->nranked == *cap)
	{
		*cap *= 2;
		s->ranked = repalloc(s->ranked, sizeof(Ranked) * *cap);
	}
	return &s->ranked[s->nranked++];
}

/* The live rows of the ROWS chain with their stored signatures. */
typedef struct StoredRows
{
	int32 *tokens; /* every row's tokens, one row's after another's */
	float *confs;  /* their confidences */
	int ntokens;
	int *first; /* per ranked row: offset of its tokens */
	int *nsig;  /* per ranked row: its token count (0 for a NULL row) */
} StoredRows;

static int
cmp_int32(const void *pa, const void *pb)
{
	int32 a = *(const int32 *) pa, b = *(const int32 *) pb;

	return a < b ? -1 : a > b;
}

/*
 * One pass over the ROWS chain: a Ranked slot per live row (its TID and
 * whether its distance is NULL) and its stored tokens. With a local model,
 * tokens outside its vocabulary are an index corruption (XX002).
 */
static void
collect_rows(IndexScanDesc scan, ScanState *s, StoredRows *rows)
{
	Relation index = scan->indexRelation;
	int cap = 1024, rowcap = 1024, tokens_cap = 4096;
	BlockNumber blk = s->meta.rows_head;

	s->ranked = palloc(sizeof(Ranked) * cap);
	rows->tokens = palloc(sizeof(int32) * tokens_cap);
	rows->confs = palloc(sizeof(float) * tokens_cap);
	rows->ntokens = 0;
	rows->first = palloc(sizeof(int) * rowcap);
	rows->nsig = palloc(sizeof(int) * rowcap);
	while (BlockNumberIsValid(blk))
	{
		Buffer buf = ReadBuffer(index, blk);
		Page page;
		OffsetNumber max;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		max = PageGetMaxOffsetNumber(page);
		for (OffsetNumber off = FirstOffsetNumber; off <= max; off++)
		{
			RowHeader *h = (RowHeader *) PageGetItem(page, PageGetItemId(page, off));
			SignatureEntry *e = (SignatureEntry *) ((char *) h + MAXALIGN(sizeof(RowHeader)));
			int n = Min(h->nsig, SIGNATURE_SIZE);
			Ranked *r;
			int at;

			if (h->flags & ROW_DEAD)
				continue;
			at = s->nranked;
			r = next_slot(s, &cap);
			if (at == rowcap)
			{
				rowcap *= 2;
				rows->first = repalloc(rows->first, sizeof(int) * rowcap);
				rows->nsig = repalloc(rows->nsig, sizeof(int) * rowcap);
			}
			r->tid = h->tid;
			r->isnull = (h->flags & ROW_NULL) || s->query_null;
			rows->first[at] = rows->ntokens;
			rows->nsig[at] = r->isnull ? 0 : n;
			if (r->isnull)
				continue;
			while (rows->ntokens + n > tokens_cap)
			{
				tokens_cap *= 2;
				rows->tokens = repalloc(rows->tokens, sizeof(int32) * tokens_cap);
				rows->confs = repalloc(rows->confs, sizeof(float) * tokens_cap);
			}
			for (int i = 0; i < n; i++)
			{
				int32 t = e[i].list;

				if (s->m != NULL && (t < 0 || t >= s->m->vocab))
					ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
									errmsg("index \"%s\" holds token %d outside model \"%s\"",
										   RelationGetRelationName(index), t, s->m->name),
									errhint("REINDEX INDEX %s;", RelationGetRelationName(index))));
				rows->confs[rows->ntokens] = e[i].score;
				rows->tokens[rows->ntokens++] = t;
			}
		}
		blk = InferPageGetOpaque(page)->next;
		UnlockReleaseBuffer(buf);
		INFER_CHECK_INTERRUPTS();
	}
}

/* The distinct tokens of the rows and of the query's signature, sorted; their count in *n. */
static int32 *
distinct_tokens(const StoredRows *rows, const Signature *qsig, int *n)
{
	int all = rows->ntokens + qsig->n;
	int32 *d = palloc(sizeof(int32) * Max(all, 1));
	int nd = 0;

	memcpy(d, rows->tokens, sizeof(int32) * rows->ntokens);
	memcpy(d + rows->ntokens, qsig->ids, sizeof(int32) * qsig->n);
	qsort(d, all, sizeof(int32), cmp_int32);
	for (int i = 0; i < all; i++)
		if (nd == 0 || d[nd - 1] != d[i])
			d[nd++] = d[i];
	*n = nd;
	return d;
}

/* Token vectors computed at once (a batched forward pass each on a host backend), at most. */
#define SCAN_VECTOR_CHUNK 256

/*
 * Each distinct token's specificity weight and its dots with the query's
 * signature tokens (table: ndistinct x nq), with the local model: the same
 * signature_dot infer_distance uses. The tokens' vectors are computed
 * SCAN_VECTOR_CHUNK at a time, so their knowledge states step together.
 */
static float *
local_token_dots(InferModel *m, const Signature *qsig, const int32 *distinct, int ndistinct,
				 float *weights)
{
	int nq = qsig->n;
	float *qvec = signature_vectors(m, qsig->ids, nq);
	float *table = palloc(sizeof(float) * (size_t) Max(ndistinct, 1) * Max(nq, 1));

	for (int c = 0; c < ndistinct; c += SCAN_VECTOR_CHUNK)
	{
		int k = Min(SCAN_VECTOR_CHUNK, ndistinct - c);
		float *v = signature_vectors(m, distinct + c, k);

		for (int d = 0; d < k; d++)
		{
			weights[c + d] = signature_token_weight(m, distinct[c + d]);
			for (int j = 0; j < nq; j++)
				table[(size_t) (c + d) * nq + j] = signature_dot(
					v + (size_t) d * m->hidden, qvec + (size_t) j * m->hidden, m->hidden);
		}
		pfree(v);
		INFER_CHECK_INTERRUPTS();
	}
	pfree(qvec);
	return table;
}

/*
 * Every live row of the index, scored from its stored signature. A row's
 * score needs only the dots of its tokens with the query's, so one pass
 * collects the rows' tokens, each distinct token's dots are computed once
 * (locally, or for an index on a remote model by its server,
 * infer_signature_dots there, with the same signature_dot), and the rows are
 * scored from those: the arithmetic infer_distance does
 * (signature_similarity_dots), without a dot product per row, and for a
 * remote model the ranking a local index of the same vindex gives.
 */
static void
rank_stored(IndexScanDesc scan, ScanState *s)
{
	StoredRows rows;
	Signature *qsig = palloc(sizeof(Signature));
	int32 *distinct;
	int ndistinct, nq;
	float *table = NULL;
	float *weights;
	float *qw;
	float *dots;
	float *rw = palloc(sizeof(float) * SIGNATURE_SIZE);

	collect_rows(scan, s, &rows);
	/* the query's signature (tokens, confidences), here or from the model's server */
	qsig->n = 0;
	if (!s->query_null && rows.ntokens > 0)
	{
		if (s->remote)
			remote_signatures(s->meta.model, &s->query, 1, qsig);
		else
			feature_signature(s->m, s->query, "query", qsig);
	}
	nq = qsig->n;
	distinct = distinct_tokens(&rows, qsig, &ndistinct);
	weights = palloc(sizeof(float) * Max(ndistinct, 1));
	if (rows.ntokens > 0 && ndistinct > 0)
	{
		if (!s->remote)
			table = local_token_dots(s->m, qsig, distinct, ndistinct, weights);
		else
		{
			table = remote_token_dots(s->meta.model, s->query, distinct, ndistinct, &nq, weights);
			if (nq != qsig->n)
				ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
								errmsg("the model server of \"%s\" answered %d query dots for a "
									   "query signature of %d tokens",
									   s->meta.model, nq, qsig->n)));
		}
	}
	qw = palloc(sizeof(float) * Max(nq, 1));
	for (int j = 0; j < nq; j++)
	{
		int32 *hit = bsearch(&qsig->ids[j], distinct, ndistinct, sizeof(int32), cmp_int32);

		qw[j] = signature_weight(qsig->conf[j], weights[hit - distinct]);
	}
	dots = palloc(sizeof(float) * (size_t) SIGNATURE_SIZE * Max(nq, 1));
	for (int k = 0; k < s->nranked; k++)
	{
		Ranked *r = &s->ranked[k];

		if (r->isnull)
			continue;
		for (int i = 0; i < rows.nsig[k]; i++)
		{
			int at = rows.first[k] + i;
			int32 *hit = bsearch(&rows.tokens[at], distinct, ndistinct, sizeof(int32), cmp_int32);

			memcpy(dots + (size_t) i * nq, table + (size_t) (hit - distinct) * nq,
				   sizeof(float) * nq);
			rw[i] = signature_weight(rows.confs[at], weights[hit - distinct]);
		}
		r->distance = 1.0 - signature_similarity_dots(dots, rw, rows.nsig[k], qw, nq);
	}
	qsort(s->ranked, s->nranked, sizeof(Ranked), cmp_ranked);
}

/*
 * When <~> means another model than the one the index was built with (a
 * plan cached before infer.default_model changed, or enable_seqscan = off),
 * the index's signatures cannot rank the rows. The scan still answers what a
 * sort by <~> answers: it reads every live row's value from the heap and
 * ranks it with the current model, the same computation infer_distance
 * makes. As slow as the sort, but never a different answer.
 */
static void
rank_with_other_model(IndexScanDesc scan, ScanState *s)
{
	Relation index = scan->indexRelation, heap = scan->heapRelation;
	AttrNumber attnum = index->rd_index->indkey.values[0];
	Signature *qsig = palloc(sizeof(Signature));
	Signature *rsig = palloc(sizeof(Signature));
	int cap = 1024;
	BlockNumber blk = s->meta.rows_head;

	qsig->n = 0;
	if (!s->query_null)
		feature_signature(s->other, s->query, "query", qsig);
	s->ranked = palloc(sizeof(Ranked) * cap);
	while (BlockNumberIsValid(blk))
	{
		Buffer buf = ReadBuffer(index, blk);
		Page page;
		OffsetNumber max;
		int nrows = 0;
		ItemPointerData *tids;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		max = PageGetMaxOffsetNumber(page);
		tids = palloc(sizeof(ItemPointerData) * Max(max, 1));
		for (OffsetNumber off = FirstOffsetNumber; off <= max; off++)
		{
			RowHeader *h = (RowHeader *) PageGetItem(page, PageGetItemId(page, off));

			if (!(h->flags & ROW_DEAD))
				tids[nrows++] = h->tid;
		}
		blk = InferPageGetOpaque(page)->next;
		UnlockReleaseBuffer(buf);

		for (int i = 0; i < nrows; i++)
		{
			HeapTupleData tuple;
			Buffer hbuf;
			bool isnull;
			Datum value;
			Ranked *r;

			tuple.t_self = tids[i];
			if (!heap_fetch(heap, scan->xs_snapshot, &tuple, &hbuf, false))
				continue; /* not visible: the executor would skip it too */
			value = heap_getattr(&tuple, attnum, RelationGetDescr(heap), &isnull);
			r = next_slot(s, &cap);
			r->tid = tids[i];
			r->isnull = isnull || s->query_null || !text_has_signature(DatumGetTextPP(value));
			if (!r->isnull)
			{
				feature_signature(s->other, DatumGetTextPP(value), "indexed value", rsig);
				r->distance = 1.0 - signature_similarity(s->other, rsig, qsig);
			}
			ReleaseBuffer(hbuf);
			INFER_CHECK_INTERRUPTS();
		}
		pfree(tids);
	}
	qsort(s->ranked, s->nranked, sizeof(Ranked), cmp_ranked);
}

/* ---- the AM callbacks ---- */

IndexScanDesc
infer_ambeginscan(Relation index, int nkeys, int norderbys)
{
	IndexScanDesc scan = RelationGetIndexScan(index, nkeys, norderbys);
	ScanState *s = palloc0(sizeof(ScanState));

	s->cxt =
		AllocSetContextCreate(CurrentMemoryContext, "infer index scan", ALLOCSET_DEFAULT_SIZES);
	scan->opaque = s;
	scan->xs_orderbyvals = palloc0(sizeof(Datum) * Max(norderbys, 1));
	scan->xs_orderbynulls = palloc0(sizeof(bool) * Max(norderbys, 1));
	return scan;
}

void
infer_amrescan(IndexScanDesc scan, ScanKey keys, int nkeys, ScanKey orderbys, int norderbys)
{
	ScanState *s = scan->opaque;
	MemoryContext old;

	if (norderbys < 1)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("an infer index only serves ORDER BY column <~> 'text'")));
	if (index_source_option(scan->indexRelation) != NULL)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("index \"%s\" stores a model and serves no scans",
							   RelationGetRelationName(scan->indexRelation))));
	MemoryContextReset(s->cxt);
	memset(((char *) s) + sizeof(MemoryContext), 0, sizeof(ScanState) - sizeof(MemoryContext));
	index_read_meta(scan->indexRelation, &s->meta);
	old = MemoryContextSwitchTo(s->cxt);
	if (infer_default_model == NULL || strcmp(infer_default_model, s->meta.model) != 0)
	{
		/* the sort's model: an unset or unknown default fails as the sort would */
		s->other = model_get(NULL);
		if (scan->indexRelation->rd_index->indkey.values[0] == 0)
			ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
							errmsg("index \"%s\" holds signatures of model \"%s\", but <~> uses "
								   "infer.default_model (\"%s\")",
								   RelationGetRelationName(scan->indexRelation), s->meta.model,
								   infer_default_model),
							errhint("SET infer.default_model = '%s';", s->meta.model)));
	}
	else if (s->meta.signature_layer == SIGNATURE_LAYER_REMOTE)
	{
		index_check_remote(scan->indexRelation, &s->meta);
		s->remote = true;
	}
	else
		s->m = index_model(scan->indexRelation, &s->meta);
	s->query_null = (orderbys[0].sk_flags & SK_ISNULL) != 0;
	if (!s->query_null)
		s->query = DatumGetTextPCopy(orderbys[0].sk_argument);
	/* a query with no signature has NULL distances, as infer_distance says */
	if (!s->query_null && !text_has_signature(s->query))
		s->query_null = true;
	MemoryContextSwitchTo(old);
}

bool
infer_amgettuple(IndexScanDesc scan, ScanDirection dir)
{
	ScanState *s = scan->opaque;
	MemoryContext old = MemoryContextSwitchTo(s->cxt);
	Ranked *r;

	scan->xs_recheck = false;
	scan->xs_recheckorderby = false;
	if (s->ranked == NULL)
	{
		if (s->other)
			rank_with_other_model(scan, s);
		else
			rank_stored(scan, s);
	}
	MemoryContextSwitchTo(old);
	if (s->rankpos >= s->nranked)
		return false;
	r = &s->ranked[s->rankpos++];
	scan->xs_heaptid = r->tid;
	scan->xs_orderbynulls[0] = r->isnull;
	scan->xs_orderbyvals[0] = r->isnull ? (Datum) 0 : Float8GetDatum(r->distance);
	return true;
}

void
infer_amendscan(IndexScanDesc scan)
{
	ScanState *s = scan->opaque;

	MemoryContextDelete(s->cxt);
	pfree(s);
}
