/*
 * index_build.c: CREATE INDEX / REINDEX for the `infer` access method.
 *
 * The heap is scanned once; rows are batched (feature_signatures_batch) and
 * each row's item, its signature's token ids (similar.h, definition version
 * 2), goes to the ROWS chain. An error anywhere aborts the transaction,
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
#include "remote.h"

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
writer_end(EntryWriter *w)
{
	GenericXLogFinish(w->state);
	UnlockReleaseBuffer(w->buf);
}

typedef struct BuildState
{
	Relation index;
	InferModel *m;      /* a local model, or NULL with: */
	const char *remote; /* a remote model's name: its server computes the signatures */
	EntryWriter rows;   /* the ROWS chain */
	int64 nrows;
	/* the current batch */
	int nbatch;
	ItemPointerData tids[BUILD_BATCH];
	text *texts[BUILD_BATCH];
	MemoryContext batch_cxt;
} BuildState;

static void
rows_add(BuildState *bs, ItemPointer tid, uint16 flags, const Signature *sig)
{
	Size size;
	char *item = index_make_row(tid, flags, sig, &size);
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
flush_batch(BuildState *bs)
{
	MemoryContext old;
	Signature *sigs;

	if (bs->nbatch == 0)
		return;
	old = MemoryContextSwitchTo(bs->batch_cxt);
	sigs = palloc(sizeof(Signature) * bs->nbatch);
	if (bs->remote)
		remote_signatures(bs->remote, bs->texts, bs->nbatch, sigs);
	else
		feature_signatures_batch(bs->m, bs->texts, bs->nbatch, sigs);
	for (int i = 0; i < bs->nbatch; i++)
		rows_add(bs, &bs->tids[i], 0, &sigs[i]);
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
		rows_add(bs, tid, ROW_NULL, NULL);
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
write_meta(Relation index, Buffer meta_buf, const InferModel *m, const char *remote,
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
	snprintf(meta->model, sizeof(meta->model), "%s", m ? m->name : remote);
	meta->nlists = m ? m->vocab : 0;
	meta->signature_layer = m ? signature_layer(m) : SIGNATURE_LAYER_REMOTE;
	meta->dir_head = InvalidBlockNumber;
	meta->rows_head = rows_head;
	meta->rows_tail = rows_tail;
	meta->pending_head = InvalidBlockNumber;
	meta->pending_tail = InvalidBlockNumber;
	meta->nrows = nrows;
	((PageHeader) page)->pd_lower = (char *) (meta + 1) - (char *) page;
	GenericXLogFinish(state);
}

static InferModel *
build_model(Relation index, const char **remote)
{
	const char *name = index_model_option(index);

	if (name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION), errmsg("an infer index needs a model"),
				 errhint("CREATE INDEX ... USING infer (column) WITH (model = 'name')")));
	*remote = NULL;
	if (remote_model_name(name))
	{
		*remote = pstrdup(name);
		return NULL;
	}
	return model_get(cstring_to_text(name));
}

IndexBuildResult *
infer_ambuild(Relation heap, Relation index, struct IndexInfo *info)
{
	IndexBuildResult *result = palloc0(sizeof(IndexBuildResult));
	BuildState bs = {0};
	Buffer meta_buf;
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
	bs.m = build_model(index, &bs.remote);
	bs.batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "infer index build batch",
										 ALLOCSET_DEFAULT_SIZES);

	meta_buf = index_new_buffer(index); /* block 0, filled last */
	writer_begin(&bs.rows, index, PAGE_ROWS, 0);

	reltuples = table_index_build_scan(heap, index, info, true, true, build_callback, &bs, NULL);
	flush_batch(&bs);
	{
		BlockNumber rows_tail = BufferGetBlockNumber(bs.rows.buf);

		writer_end(&bs.rows);
		write_meta(index, meta_buf, bs.m, bs.remote, bs.rows.first, rows_tail, bs.nrows);
	}
	UnlockReleaseBuffer(meta_buf);
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
