/*
 * index_build.c: CREATE INDEX / REINDEX for the `infer` access method.
 *
 * The heap is scanned once; rows are batched through the batched gate
 * kernel (feature_signatures_batch) and each row's item goes to the ROWS
 * chain while its postings go to a tuplesort keyed (list, -score, TID),
 * which keeps to maintenance_work_mem and spills to disk beyond it. The
 * sorted postings are then packed list after list, and the directory
 * records where each list starts. An error anywhere aborts the transaction,
 * which removes the whole index: there is never a half-built one.
 */
#include "pg_infer.h"

#include "deadline.h"

#include "access/tableam.h"
#include "catalog/index.h"
#include "catalog/pg_type.h"
#include "commands/progress.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/backend_progress.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/tuplesort.h"
#include "utils/typcache.h"

#include "index.h"

/* Rows whose signatures are computed together. */
#define BUILD_BATCH 64
/* A NOTICE every this many rows, so long builds show progress. */
#define BUILD_NOTICE_EVERY 10000

/*
 * Sequential writer into a chain of new pages: fixed-size entries
 * (POSTINGS, DIR) or line-pointer items (ROWS). Each page is one GenericXLog
 * record, finished when the next page is linked after it.
 */
typedef struct EntryWriter
{
	Relation index;
	InferPageType type;
	Size size; /* of a fixed-size entry; 0 for items */
	int cap;
	Buffer buf;
	GenericXLogState *state;
	Page page;
	BlockNumber first;
	MemoryContext cxt; /* the GenericXLog state outlives shorter contexts */
} EntryWriter;

static void
writer_open_page(EntryWriter *w)
{
	MemoryContext old = MemoryContextSwitchTo(w->cxt);

	w->buf = index_new_buffer(w->index);
	w->state = GenericXLogStart(w->index);
	w->page = GenericXLogRegisterBuffer(w->state, w->buf, GENERIC_XLOG_FULL_IMAGE);
	index_init_page(w->page, w->type);
	MemoryContextSwitchTo(old);
}

static void
writer_begin(EntryWriter *w, Relation index, InferPageType type, Size size)
{
	w->index = index;
	w->type = type;
	w->size = size;
	w->cap = size > 0 ? INFER_PAGE_CAPACITY(size) : 0;
	w->cxt = CurrentMemoryContext;
	writer_open_page(w);
	w->first = BufferGetBlockNumber(w->buf);
}

/* Links a new page after the current one and makes it current. */
static void
writer_next_page(EntryWriter *w)
{
	Buffer old = w->buf;
	GenericXLogState *old_state = w->state;
	Page old_page = w->page;

	writer_open_page(w);
	InferPageGetOpaque(old_page)->next = BufferGetBlockNumber(w->buf);
	GenericXLogFinish(old_state);
	UnlockReleaseBuffer(old);
}

/* Makes room for one entry (moving to a new page when full); returns its slot. */
static void
writer_reserve(EntryWriter *w, BlockNumber *blk, int *index)
{
	if (InferPageGetOpaque(w->page)->count >= w->cap)
		writer_next_page(w);
	*blk = BufferGetBlockNumber(w->buf);
	*index = InferPageGetOpaque(w->page)->count;
}

static void
writer_add(EntryWriter *w, const void *entry)
{
	BlockNumber blk;
	int i;

	writer_reserve(w, &blk, &i);
	memcpy(InferPageEntries(w->page) + i * w->size, entry, w->size);
	index_set_lower(w->page, i + 1, w->size);
}

static void
writer_end(EntryWriter *w)
{
	GenericXLogFinish(w->state);
	UnlockReleaseBuffer(w->buf);
}

typedef struct BuildState
{
	Relation index;
	InferModel *m;
	EntryWriter rows; /* the ROWS chain */
	int64 nrows;
	/* postings */
	TupleDesc sort_desc;
	Tuplesortstate *sort;
	TupleTableSlot *slot;
	/* the current batch */
	int nbatch;
	ItemPointerData tids[BUILD_BATCH];
	text *texts[BUILD_BATCH];
	MemoryContext batch_cxt;
} BuildState;

static void
rows_add(BuildState *bs, ItemPointer tid, uint16 flags, const GateHit *sig, int nsig)
{
	Size size;
	char *item = index_make_row(tid, flags, sig, nsig, bs->m, &size);
	EntryWriter *w = &bs->rows;

	if (PageAddItem(w->page, item, size, InvalidOffsetNumber, false, false) == InvalidOffsetNumber)
	{
		writer_next_page(w);
		if (PageAddItem(w->page, item, size, InvalidOffsetNumber, false, false) ==
			InvalidOffsetNumber)
			elog(ERROR, "pg_infer: a row item of %zu bytes does not fit a page", size);
	}
	bs->nrows++;
	pfree(item);
}

static void
sort_add(BuildState *bs, int32 list, float4 score, ItemPointer tid)
{
	ItemPointer copy = palloc(sizeof(ItemPointerData));

	*copy = *tid;
	ExecClearTuple(bs->slot);
	bs->slot->tts_values[0] = Int32GetDatum(list);
	bs->slot->tts_values[1] = Float4GetDatum(-score); /* descending by score */
	bs->slot->tts_values[2] = ItemPointerGetDatum(copy);
	memset(bs->slot->tts_isnull, 0, 3 * sizeof(bool));
	ExecStoreVirtualTuple(bs->slot);
	tuplesort_puttupleslot(bs->sort, bs->slot);
}

static void
flush_batch(BuildState *bs)
{
	MemoryContext old;
	GateHit(*sigs)[SIGNATURE_SIZE];
	int *counts;

	if (bs->nbatch == 0)
		return;
	old = MemoryContextSwitchTo(bs->batch_cxt);
	sigs = palloc(sizeof(*sigs) * bs->nbatch);
	counts = palloc(sizeof(int) * bs->nbatch);
	feature_signatures_batch(bs->m, bs->texts, bs->nbatch, sigs, counts);
	for (int i = 0; i < bs->nbatch; i++)
	{
		rows_add(bs, &bs->tids[i], 0, sigs[i], counts[i]);
		for (int j = 0; j < counts[i]; j++)
			sort_add(bs, model_list_id(bs->m, sigs[i][j].layer, sigs[i][j].feature),
					 sigs[i][j].score, &bs->tids[i]);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(bs->batch_cxt);
	bs->nbatch = 0;
	pgstat_progress_update_param(PROGRESS_CREATEIDX_TUPLES_DONE, bs->nrows);
	if (bs->nrows % BUILD_NOTICE_EVERY < BUILD_BATCH && bs->nrows >= BUILD_NOTICE_EVERY)
		ereport(NOTICE, (errmsg("infer index \"%s\": %lld rows indexed",
								RelationGetRelationName(bs->index), (long long) bs->nrows)));
}

static void
build_callback(Relation index, ItemPointer tid, Datum *values, bool *isnull, bool alive,
			   void *state)
{
	BuildState *bs = state;

	/* a text with no possible signature is stored like NULL (knowledge.h) */
	if (isnull[0] || !text_has_signature(DatumGetTextPP(values[0])))
	{
		rows_add(bs, tid, ROW_NULL, NULL, 0);
		return;
	}
	bs->tids[bs->nbatch] = *tid;
	{
		/* the heap tuple is gone after the callback: keep a copy in the batch */
		MemoryContext old = MemoryContextSwitchTo(bs->batch_cxt);

		bs->texts[bs->nbatch] =
			(text *) pg_detoast_datum_copy((struct varlena *) DatumGetPointer(values[0]));
		MemoryContextSwitchTo(old);
	}
	if (++bs->nbatch == BUILD_BATCH)
		flush_batch(bs);
}

static void
begin_sort(BuildState *bs)
{
	AttrNumber cols[3] = {1, 2, 3};
	Oid ops[3];
	Oid colls[3] = {InvalidOid, InvalidOid, InvalidOid};
	bool nulls_first[3] = {false, false, false};
	Oid types[3] = {INT4OID, FLOAT4OID, TIDOID};

	bs->sort_desc = CreateTemplateTupleDesc(3);
	for (int i = 0; i < 3; i++)
	{
		TupleDescInitEntry(bs->sort_desc, i + 1, NULL, types[i], -1, 0);
		ops[i] = lookup_type_cache(types[i], TYPECACHE_LT_OPR)->lt_opr;
	}
	bs->sort = tuplesort_begin_heap(bs->sort_desc, 3, cols, ops, colls, nulls_first,
									maintenance_work_mem, NULL, TUPLESORT_NONE);
	bs->slot = MakeSingleTupleTableSlot(bs->sort_desc, &TTSOpsVirtual);
}

/* Packs the sorted postings list after list; returns each list's DirEntry. */
static DirEntry *
write_postings(BuildState *bs, int32 nlists)
{
	DirEntry *dir = palloc0(sizeof(DirEntry) * (nlists > 0 ? nlists : 1));
	TupleTableSlot *out = MakeSingleTupleTableSlot(bs->sort_desc, &TTSOpsMinimalTuple);
	EntryWriter w;
	bool opened = false;

	for (int i = 0; i < nlists; i++)
		dir[i].blk = InvalidBlockNumber;
	tuplesort_performsort(bs->sort);
	while (tuplesort_gettupleslot(bs->sort, true, false, out, NULL))
	{
		Posting p;
		int32 list;
		BlockNumber blk;
		int at;

		slot_getallattrs(out);
		list = DatumGetInt32(out->tts_values[0]);
		p.score = -DatumGetFloat4(out->tts_values[1]);
		p.tid = *DatumGetItemPointer(out->tts_values[2]);
		p.flags = 0;
		if (!opened)
		{
			writer_begin(&w, bs->index, PAGE_POSTINGS, sizeof(Posting));
			opened = true;
		}
		writer_reserve(&w, &blk, &at);
		if (dir[list].count++ == 0)
		{
			dir[list].blk = blk;
			dir[list].index = at;
		}
		writer_add(&w, &p);
		INFER_CHECK_INTERRUPTS();
	}
	if (opened)
		writer_end(&w);
	ExecDropSingleTupleTableSlot(out);
	return dir;
}

/* The directory: contiguous pages, entry i at dir_head + i / capacity. */
static BlockNumber
write_directory(Relation index, const DirEntry *dir, int32 nlists)
{
	EntryWriter w;

	writer_begin(&w, index, PAGE_DIR, sizeof(DirEntry));
	for (int i = 0; i < nlists; i++)
		writer_add(&w, &dir[i]);
	writer_end(&w);
	return w.first;
}

static void
write_meta(Relation index, Buffer meta_buf, const char *model, int32 nlists, BlockNumber dir_head,
		   BlockNumber rows_head, BlockNumber rows_tail, int64 nrows)
{
	GenericXLogState *state = GenericXLogStart(index);
	Page page = GenericXLogRegisterBuffer(state, meta_buf, GENERIC_XLOG_FULL_IMAGE);
	InferMetaData *meta;

	index_init_page(page, PAGE_META);
	meta = InferPageGetMeta(page);
	memset(meta, 0, sizeof(InferMetaData));
	meta->magic = INFER_INDEX_MAGIC;
	meta->version = INFER_INDEX_VERSION;
	snprintf(meta->model, sizeof(meta->model), "%s", model);
	meta->nlists = nlists;
	meta->dir_head = dir_head;
	meta->rows_head = rows_head;
	meta->rows_tail = rows_tail;
	meta->pending_head = InvalidBlockNumber;
	meta->pending_tail = InvalidBlockNumber;
	meta->nrows = nrows;
	((PageHeader) page)->pd_lower = (char *) (meta + 1) - (char *) page;
	GenericXLogFinish(state);
}

static InferModel *
build_model(Relation index)
{
	const char *name = index_model_option(index);

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION), errmsg("an infer index needs a model"),
				 errhint("CREATE INDEX ... USING infer (column) WITH (model = 'name')")));
	return model_get(cstring_to_text(name));
}

IndexBuildResult *
infer_ambuild(Relation heap, Relation index, struct IndexInfo *info)
{
	IndexBuildResult *result = palloc0(sizeof(IndexBuildResult));
	BuildState bs = {0};
	Buffer meta_buf;
	DirEntry *dir;
	BlockNumber dir_head;
	int32 nlists;
	double reltuples;

	if (RelationGetNumberOfBlocksInFork(index, MAIN_FORKNUM) != 0)
		elog(ERROR, "index \"%s\" already contains data", RelationGetRelationName(index));
	if (index_source_option(index) != NULL)
	{
		if (index_model_option(index) != NULL)
			ereport(ERROR, (errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
							errmsg("an infer index takes either model or source, not both")));
		build_model_index(index, index_source_option(index), index_level_option(index));
		return result; /* a model store indexes no rows */
	}
	bs.index = index;
	bs.m = build_model(index);
	nlists = model_total_features(bs.m);
	bs.batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "infer index build batch",
										 ALLOCSET_DEFAULT_SIZES);

	meta_buf = index_new_buffer(index); /* block 0, filled last */
	writer_begin(&bs.rows, index, PAGE_ROWS, 0);
	begin_sort(&bs);

	reltuples = table_index_build_scan(heap, index, info, true, true, build_callback, &bs, NULL);
	flush_batch(&bs);
	{
		BlockNumber rows_tail = BufferGetBlockNumber(bs.rows.buf);

		writer_end(&bs.rows);
		pgstat_progress_update_param(PROGRESS_CREATEIDX_SUBPHASE,
									 PROGRESS_CREATEIDX_SUBPHASE_INITIALIZE + 1);
		dir = write_postings(&bs, nlists);
		dir_head = write_directory(index, dir, nlists);
		write_meta(index, meta_buf, bs.m->name, nlists, dir_head, bs.rows.first, rows_tail,
				   bs.nrows);
	}
	UnlockReleaseBuffer(meta_buf);
	tuplesort_end(bs.sort);
	ExecDropSingleTupleTableSlot(bs.slot);
	MemoryContextDelete(bs.batch_cxt);

	result->heap_tuples = reltuples;
	result->index_tuples = bs.nrows;
	return result;
}

/* Unlogged tables would need an init-fork image of an empty index: not yet. */
void
infer_ambuildempty(Relation index)
{
	ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					errmsg("infer indexes on unlogged tables are not supported")));
}
