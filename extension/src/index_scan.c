/*
 * index_scan.c: ORDER BY col <~> 'query' served by an `infer` index.
 *
 * similarity(row) = max over the features the row's and the query's
 * signatures share of min(score_row, score_query), and distance =
 * 1 / (1 + similarity): exactly infer_distance. Every posting list is
 * sorted by score descending, so the contributions a list can still give
 * are bounded by min(score_query, score at its head). The scan consumes the
 * list whose bound is highest and returns a row as soon as its similarity is
 * strictly above every bound: no unread row can beat it or tie it. Rows
 * sharing no feature (distance 1) follow in TID order, then rows whose value
 * is NULL (distance NULL), as a sort of the same distances puts them; ties
 * are returned in TID order. The result is exact, not approximate, and
 * reads only the lists of the query's features (plus the unsorted postings
 * of rows inserted since the last build).
 */
#include "pg_infer.h"

#include "deadline.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "guc.h"
#include "index.h"

typedef struct Cursor
{
	int32 list;
	float sq;        /* the query's score for this feature */
	BlockNumber blk; /* next unread entry */
	int index;
	int remaining;
	bool has_head;
	Posting head;
} Cursor;

typedef struct Seen
{
	ItemPointerData tid; /* hash key */
	float sim;
	bool emitted;
} Seen;

typedef struct Candidate
{
	ItemPointerData tid;
	float sim;
} Candidate;

typedef struct ScanState
{
	MemoryContext cxt;
	bool started;
	bool ranked_done;
	bool query_null;
	text *query;
	InferMetaData meta;
	InferModel *m;
	Cursor cur[SIGNATURE_SIZE];
	int ncur;
	HTAB *seen;
	Candidate *heap; /* max-heap by (sim desc, tid asc); stale entries skipped */
	int nheap;
	int heapcap;
	ItemPointerData *rest; /* rows after the ranked ones, in output order */
	bool *rest_null;
	int nrest;
	int restpos;
	/* <~> under another model than the index's: every row, ranked by that model */
	InferModel *other;
	struct Ranked *ranked;
	int nranked;
	int rankpos;
} ScanState;

typedef struct Ranked
{
	ItemPointerData tid;
	bool isnull;
	double distance;
} Ranked;

/* ---- the candidate heap ---- */

static bool
cand_before(const Candidate *a, const Candidate *b)
{
	if (a->sim != b->sim)
		return a->sim > b->sim;
	return ItemPointerCompare((ItemPointer) &a->tid, (ItemPointer) &b->tid) < 0;
}

static void
heap_push(ScanState *s, ItemPointer tid, float sim)
{
	int i;

	if (s->nheap == s->heapcap)
	{
		s->heapcap = s->heapcap ? s->heapcap * 2 : 256;
		s->heap = s->heap ? repalloc(s->heap, sizeof(Candidate) * s->heapcap)
						  : palloc(sizeof(Candidate) * s->heapcap);
	}
	i = s->nheap++;
	s->heap[i].tid = *tid;
	s->heap[i].sim = sim;
	while (i > 0 && cand_before(&s->heap[i], &s->heap[(i - 1) / 2]))
	{
		Candidate t = s->heap[i];

		s->heap[i] = s->heap[(i - 1) / 2];
		s->heap[(i - 1) / 2] = t;
		i = (i - 1) / 2;
	}
}

static void
heap_pop(ScanState *s)
{
	int i = 0;

	s->heap[0] = s->heap[--s->nheap];
	for (;;)
	{
		int l = 2 * i + 1, r = l + 1, b = i;
		Candidate t;

		if (l < s->nheap && cand_before(&s->heap[l], &s->heap[b]))
			b = l;
		if (r < s->nheap && cand_before(&s->heap[r], &s->heap[b]))
			b = r;
		if (b == i)
			return;
		t = s->heap[i];
		s->heap[i] = s->heap[b];
		s->heap[b] = t;
		i = b;
	}
}

/* The best candidate whose entry is current, or NULL. */
static Seen *
heap_top(ScanState *s)
{
	while (s->nheap > 0)
	{
		Seen *e = hash_search(s->seen, &s->heap[0].tid, HASH_FIND, NULL);

		if (e && !e->emitted && e->sim == s->heap[0].sim)
			return e;
		heap_pop(s);
	}
	return NULL;
}

/* A row gained a contribution. */
static void
contribute(ScanState *s, ItemPointer tid, float c)
{
	bool found;
	Seen *e = hash_search(s->seen, tid, HASH_ENTER, &found);

	if (!found)
	{
		e->sim = c;
		e->emitted = false;
	}
	else if (e->emitted || c <= e->sim)
		return;
	e->sim = c;
	heap_push(s, tid, c);
}

/* ---- posting cursors ---- */

/* Loads the next live entry of a list into cur->head. */
static void
cursor_next(Relation index, Cursor *cur)
{
	cur->has_head = false;
	while (cur->remaining > 0 && BlockNumberIsValid(cur->blk))
	{
		Buffer buf = ReadBuffer(index, cur->blk);
		Page page;
		InferPageOpaqueData *o;
		Posting *entries;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		o = InferPageGetOpaque(page);
		entries = (Posting *) InferPageEntries(page);
		while (cur->remaining > 0 && cur->index < o->count && !cur->has_head)
		{
			Posting p = entries[cur->index++];

			cur->remaining--;
			if (!(p.flags & POSTING_DEAD))
			{
				cur->head = p;
				cur->has_head = true;
			}
		}
		if (cur->index >= o->count)
		{
			cur->blk = o->next;
			cur->index = 0;
		}
		UnlockReleaseBuffer(buf);
		if (cur->has_head)
			return;
	}
}

static DirEntry
read_dir_entry(Relation index, const InferMetaData *meta, int32 list)
{
	int cap = INFER_PAGE_CAPACITY(sizeof(DirEntry));
	Buffer buf = ReadBuffer(index, meta->dir_head + list / cap);
	DirEntry e;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	e = ((DirEntry *) InferPageEntries(BufferGetPage(buf)))[list % cap];
	UnlockReleaseBuffer(buf);
	return e;
}

static int
cmp_cursor_list(const void *a, const void *b)
{
	int32 x = ((const Cursor *) a)->list, y = ((const Cursor *) b)->list;

	return x < y ? -1 : x > y;
}

/* Postings of rows inserted since the build: all read now. */
static void
load_pending(Relation index, ScanState *s)
{
	BlockNumber blk = s->meta.pending_head;

	while (BlockNumberIsValid(blk))
	{
		Buffer buf = ReadBuffer(index, blk);
		Page page;
		InferPageOpaqueData *o;
		PendingPosting *entries;

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		page = BufferGetPage(buf);
		o = InferPageGetOpaque(page);
		entries = (PendingPosting *) InferPageEntries(page);
		for (int i = 0; i < o->count; i++)
		{
			Cursor key;
			Cursor *c;

			if (entries[i].p.flags & POSTING_DEAD)
				continue;
			key.list = entries[i].list;
			c = bsearch(&key, s->cur, s->ncur, sizeof(Cursor), cmp_cursor_list);
			if (c)
				contribute(s, &entries[i].p.tid, Min(c->sq, entries[i].p.score));
		}
		blk = o->next;
		UnlockReleaseBuffer(buf);
		INFER_CHECK_INTERRUPTS();
	}
}

static void
start_scan(IndexScanDesc scan, ScanState *s)
{
	GateHit sig[SIGNATURE_SIZE];
	int n;
	HASHCTL ctl = {0};

	ctl.keysize = sizeof(ItemPointerData);
	ctl.entrysize = sizeof(Seen);
	ctl.hcxt = s->cxt;
	s->seen = hash_create("infer index scan", 1024, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	s->started = true;
	if (s->query_null)
	{
		s->ranked_done = true;
		return;
	}
	n = feature_signature(s->m, s->query, "query", sig);
	s->ncur = n;
	for (int i = 0; i < n; i++)
	{
		Cursor *c = &s->cur[i];
		DirEntry d;

		c->list = model_list_id(s->m, sig[i].layer, sig[i].feature);
		c->sq = sig[i].score;
		d = read_dir_entry(scan->indexRelation, &s->meta, c->list);
		c->blk = d.count > 0 ? d.blk : InvalidBlockNumber;
		c->index = d.index;
		c->remaining = d.count;
	}
	qsort(s->cur, s->ncur, sizeof(Cursor), cmp_cursor_list);
	for (int i = 0; i < s->ncur; i++)
		cursor_next(scan->indexRelation, &s->cur[i]);
	load_pending(scan->indexRelation, s);
}

/* The highest bound of any list, and which list; -1 when all are read. */
static float
best_bound(ScanState *s, Cursor **which)
{
	float best = -1;

	*which = NULL;
	for (int i = 0; i < s->ncur; i++)
	{
		Cursor *c = &s->cur[i];
		float b;

		if (!c->has_head)
			continue;
		b = Min(c->sq, c->head.score);
		if (b > best)
		{
			best = b;
			*which = c;
		}
	}
	return best;
}

/* Next ranked row, or false when no row shares a feature any more. */
static bool
next_ranked(IndexScanDesc scan, ScanState *s, ItemPointer tid, float *sim)
{
	for (;;)
	{
		Seen *top = heap_top(s);
		Cursor *c;
		float bound = best_bound(s, &c);

		if (top && top->sim > bound)
		{
			top->emitted = true;
			*tid = top->tid;
			*sim = top->sim;
			heap_pop(s);
			return true;
		}
		if (c == NULL)
			return false;
		contribute(s, &c->head.tid, bound);
		cursor_next(scan->indexRelation, c);
		INFER_CHECK_INTERRUPTS();
	}
}

static int
cmp_tid(const void *a, const void *b)
{
	return ItemPointerCompare((ItemPointer) a, (ItemPointer) b);
}

/*
 * The rows after the ranked ones: those sharing no feature (distance 1) in
 * TID order, then NULL values in TID order; with a NULL query, every row in
 * TID order.
 */
static void
collect_rest(Relation index, ScanState *s)
{
	int cap = 1024, nzero = 0, nnull = 0;
	ItemPointerData *zero = palloc(sizeof(ItemPointerData) * cap);
	ItemPointerData *nulls = palloc(sizeof(ItemPointerData) * cap);
	BlockNumber blk = s->meta.rows_head;

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
			bool is_null = (h->flags & ROW_NULL) || s->query_null;
			Seen *e;

			if (h->flags & ROW_DEAD)
				continue;
			e = hash_search(s->seen, &h->tid, HASH_FIND, NULL);
			if (e && e->emitted)
				continue;
			if (nzero == cap || nnull == cap)
			{
				cap *= 2;
				zero = repalloc(zero, sizeof(ItemPointerData) * cap);
				nulls = repalloc(nulls, sizeof(ItemPointerData) * cap);
			}
			if (is_null)
				nulls[nnull++] = h->tid;
			else
				zero[nzero++] = h->tid;
		}
		blk = InferPageGetOpaque(page)->next;
		UnlockReleaseBuffer(buf);
		INFER_CHECK_INTERRUPTS();
	}
	qsort(zero, nzero, sizeof(ItemPointerData), cmp_tid);
	qsort(nulls, nnull, sizeof(ItemPointerData), cmp_tid);
	s->nrest = nzero + nnull;
	s->rest = palloc(sizeof(ItemPointerData) * (s->nrest > 0 ? s->nrest : 1));
	s->rest_null = palloc(sizeof(bool) * (s->nrest > 0 ? s->nrest : 1));
	memcpy(s->rest, zero, sizeof(ItemPointerData) * nzero);
	memcpy(s->rest + nzero, nulls, sizeof(ItemPointerData) * nnull);
	for (int i = 0; i < s->nrest; i++)
		s->rest_null[i] = i >= nzero;
	s->restpos = 0;
}

/* ---- a scan under another model ---- */

/*
 * When <~> means another model than the one the index was built with (a
 * plan cached before infer.default_model changed, or enable_seqscan = off),
 * the index's signatures cannot rank the rows. The scan still answers what a
 * sort by <~> answers: it reads every live row's value from the heap and
 * ranks it with the current model, the same computation infer_distance
 * makes. As slow as the sort, but never a different answer.
 */
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

static void
rank_with_other_model(IndexScanDesc scan, ScanState *s)
{
	Relation index = scan->indexRelation, heap = scan->heapRelation;
	AttrNumber attnum = index->rd_index->indkey.values[0];
	GateHit qsig[SIGNATURE_SIZE], rsig[SIGNATURE_SIZE];
	int nq = s->query_null ? 0 : feature_signature(s->other, s->query, "query", qsig);
	int cap = 1024;
	BlockNumber blk = s->meta.rows_head;

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
			if (s->nranked == cap)
			{
				cap *= 2;
				s->ranked = repalloc(s->ranked, sizeof(Ranked) * cap);
			}
			r = &s->ranked[s->nranked++];
			r->tid = tids[i];
			r->isnull = isnull || s->query_null || !text_has_signature(DatumGetTextPP(value));
			if (!r->isnull)
			{
				int nr = feature_signature(s->other, DatumGetTextPP(value), "indexed value", rsig);

				r->distance = 1.0 / (1.0 + signature_similarity(qsig, nq, rsig, nr));
			}
			ReleaseBuffer(hbuf);
			INFER_CHECK_INTERRUPTS();
		}
		pfree(tids);
	}
	qsort(s->ranked, s->nranked, sizeof(Ranked), cmp_ranked);
}

static bool
next_other(IndexScanDesc scan, ScanState *s)
{
	Ranked *r;

	if (s->ranked == NULL)
		rank_with_other_model(scan, s);
	if (s->rankpos >= s->nranked)
		return false;
	r = &s->ranked[s->rankpos++];
	scan->xs_heaptid = r->tid;
	scan->xs_orderbynulls[0] = r->isnull;
	scan->xs_orderbyvals[0] = r->isnull ? (Datum) 0 : Float8GetDatum(r->distance);
	return true;
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
	bool found = true;
	float sim;

	scan->xs_recheck = false;
	scan->xs_recheckorderby = false;
	if (s->other)
	{
		found = next_other(scan, s);
		MemoryContextSwitchTo(old);
		return found;
	}
	if (!s->started)
		start_scan(scan, s);
	if (!s->ranked_done && next_ranked(scan, s, &scan->xs_heaptid, &sim))
	{
		scan->xs_orderbyvals[0] = Float8GetDatum(1.0 / (1.0 + (double) sim));
		scan->xs_orderbynulls[0] = false;
	}
	else
	{
		if (!s->ranked_done)
		{
			s->ranked_done = true;
			collect_rest(scan->indexRelation, s);
		}
		if (s->rest == NULL)
			collect_rest(scan->indexRelation, s);
		if (s->restpos < s->nrest)
		{
			scan->xs_heaptid = s->rest[s->restpos];
			scan->xs_orderbynulls[0] = s->rest_null[s->restpos];
			scan->xs_orderbyvals[0] = s->rest_null[s->restpos] ? (Datum) 0 : Float8GetDatum(1.0);
			s->restpos++;
		}
		else
			found = false;
	}
	MemoryContextSwitchTo(old);
	return found;
}

void
infer_amendscan(IndexScanDesc scan)
{
	ScanState *s = scan->opaque;

	MemoryContextDelete(s->cxt);
	pfree(s);
}
