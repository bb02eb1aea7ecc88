/*
 * index_utils.c: the `infer` access method's handler, its WITH options, and
 * the page helpers the other phases share.
 */
#include "pg_infer.h"

#include "access/reloptions.h"
#include "fmgr.h"
#include "nodes/nodes.h"
#include "utils/builtins.h"
#include "utils/rel.h"

#include "guc.h"
#include "index.h"
#include "remote.h"

PG_FUNCTION_INFO_V1(infer_am_handler);

static relopt_kind infer_relopt_kind;

void
index_options_init(void)
{
	infer_relopt_kind = add_reloption_kind();
	add_string_reloption(infer_relopt_kind, "model",
						 "Model whose feature signatures the index stores", NULL, NULL,
						 AccessExclusiveLock);
	add_string_reloption(infer_relopt_kind, "source",
						 "Vindex to store in the index's pages (a model index)", NULL, NULL,
						 AccessExclusiveLock);
	add_string_reloption(infer_relopt_kind, "level",
						 "Extract level a model index stores: browse, inference or all", NULL, NULL,
						 AccessExclusiveLock);
}

static bytea *
infer_amoptions(Datum reloptions, bool validate)
{
	static const relopt_parse_elt tab[] = {
		{"model", RELOPT_TYPE_STRING, offsetof(InferOptions, model_offset)},
		{"source", RELOPT_TYPE_STRING, offsetof(InferOptions, source_offset)},
		{"level", RELOPT_TYPE_STRING, offsetof(InferOptions, level_offset)},
	};

	return (bytea *) build_reloptions(reloptions, validate, infer_relopt_kind, sizeof(InferOptions),
									  tab, lengthof(tab));
}

/* The index's WITH (model = ...), or NULL. */
const char *
index_model_option(Relation index)
{
	InferOptions *opts = (InferOptions *) index->rd_options;

	if (opts == NULL || opts->model_offset == 0)
		return NULL;
	return (const char *) opts + opts->model_offset;
}

const char *
index_source_option(Relation index)
{
	InferOptions *opts = (InferOptions *) index->rd_options;

	if (opts == NULL || opts->source_offset == 0)
		return NULL;
	return (const char *) opts + opts->source_offset;
}

const char *
index_level_option(Relation index)
{
	InferOptions *opts = (InferOptions *) index->rd_options;

	if (opts == NULL || opts->level_offset == 0)
		return "browse";
	return (const char *) opts + opts->level_offset;
}

static bool
infer_amvalidate(Oid opclassoid)
{
	return true;
}

Datum
infer_am_handler(PG_FUNCTION_ARGS)
{
	IndexAmRoutine *am = makeNode(IndexAmRoutine);

	am->amstrategies = 0;
	am->amsupport = 0;
	am->amcanorderbyop = true;
	am->amoptionalkey = true;
	am->amusemaintenanceworkmem = true;
	am->amkeytype = InvalidOid;
	am->ambuild = infer_ambuild;
	am->ambuildempty = infer_ambuildempty;
	am->aminsert = infer_aminsert;
	am->ambulkdelete = infer_ambulkdelete;
	am->amvacuumcleanup = infer_amvacuumcleanup;
	am->amcostestimate = infer_amcostestimate;
	am->amoptions = infer_amoptions;
	am->amvalidate = infer_amvalidate;
	am->ambeginscan = infer_ambeginscan;
	am->amrescan = infer_amrescan;
	am->amgettuple = infer_amgettuple;
	am->amendscan = infer_amendscan;
	PG_RETURN_POINTER(am);
}

/* ---- pages ---- */

/* A new page at the end of the index, pinned and exclusively locked. */
Buffer
index_new_buffer(Relation index)
{
	return ExtendBufferedRel(BMR_REL(index), MAIN_FORKNUM, NULL, EB_LOCK_FIRST);
}

void
index_init_page(Page page, InferPageType type)
{
	InferPageOpaqueData *o;

	PageInit(page, BLCKSZ, sizeof(InferPageOpaqueData));
	o = InferPageGetOpaque(page);
	o->next = InvalidBlockNumber;
	o->type = type;
	o->count = 0;
}

/*
 * Fixed-size entries live between the header and pd_lower: GenericXLog only
 * logs what lies outside the pd_lower..pd_upper hole, so pd_lower must cover
 * every entry.
 */
void
index_set_lower(Page page, int count, Size entry_size)
{
	InferPageGetOpaque(page)->count = count;
	((PageHeader) page)->pd_lower = (InferPageEntries(page) - (char *) page) + count * entry_size;
}

void
index_read_meta(Relation index, InferMetaData *meta)
{
	Buffer buf = ReadBuffer(index, INFER_META_BLKNO);
	Page page;

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	page = BufferGetPage(buf);
	memcpy(meta, InferPageGetMeta(page), sizeof(InferMetaData));
	UnlockReleaseBuffer(buf);
	if (meta->magic == INFER_INDEX_MAGIC && meta->version != INFER_INDEX_VERSION)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("index \"%s\" holds signatures of definition version %u; this "
							   "pg_infer compares signatures of version %d",
							   RelationGetRelationName(index), meta->version, INFER_INDEX_VERSION),
						errhint("REINDEX INDEX %s;", RelationGetRelationName(index))));
	if (meta->magic != INFER_INDEX_MAGIC)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index \"%s\" is not a valid infer index", RelationGetRelationName(index)),
				 errhint("REINDEX it.")));
}

/* The model an index was built with, checked against its shape. */
void
index_check_remote(Relation index, const InferMetaData *meta)
{
	if (!remote_model_name(meta->model))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" was built on remote model \"%s\", which is no longer remote",
						RelationGetRelationName(index), meta->model),
				 errhint("REINDEX INDEX %s;", RelationGetRelationName(index))));
}

InferModel *
index_model(Relation index, const InferMetaData *meta)
{
	text *name = cstring_to_text(meta->model);
	InferModel *m = model_get(name);

	if (m->vocab != meta->nlists)
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
						errmsg("index \"%s\" was built for a model \"%s\" with a vocabulary "
							   "of %d tokens, which now has %d",
							   RelationGetRelationName(index), meta->model, meta->nlists, m->vocab),
						errhint("REINDEX INDEX %s;", RelationGetRelationName(index))));
	if (signature_layer(m) != meta->signature_layer)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("index \"%s\" holds signatures of model \"%s\" compared by %s, but the "
						"model now compares %s",
						RelationGetRelationName(index), meta->model,
						meta->signature_layer < 0 ? "input embeddings" : "knowledge states",
						signature_layer(m) < 0 ? "input embeddings" : "knowledge states"),
				 errdetail("The model was registered again at another extract level."),
				 errhint("REINDEX INDEX %s;", RelationGetRelationName(index))));
	return m;
}

/* Updates the meta page's chain pointers and counters inside a GenericXLog record. */
static InferMetaData *
register_meta(GenericXLogState *state, Buffer meta_buf)
{
	return InferPageGetMeta(GenericXLogRegisterBuffer(state, meta_buf, 0));
}

/* Builds a ROWS item in palloc'd memory; *size is set. */
char *
index_make_row(ItemPointer tid, uint16 flags, const Signature *sig, Size *size)
{
	RowHeader *h;
	SignatureEntry *e;
	int nsig = sig ? sig->n : 0;

	*size = MAXALIGN(sizeof(RowHeader)) + nsig * sizeof(SignatureEntry);
	h = palloc0(*size);
	h->tid = *tid;
	h->flags = flags;
	h->nsig = nsig;
	e = (SignatureEntry *) ((char *) h + MAXALIGN(sizeof(RowHeader)));
	for (int i = 0; i < nsig; i++)
	{
		e[i].list = sig->ids[i]; /* a token id */
		e[i].score = sig->conf[i];
	}
	return (char *) h;
}

/* Appends one row's item to the ROWS chain (after the build). */
void
index_append_row(Relation index, ItemPointer tid, uint16 flags, const Signature *sig)
{
	Size size;
	char *item = index_make_row(tid, flags, sig, &size);
	Buffer meta_buf = ReadBuffer(index, INFER_META_BLKNO);
	GenericXLogState *state;
	InferMetaData *meta;
	Buffer buf;
	Page page;

	LockBuffer(meta_buf, BUFFER_LOCK_EXCLUSIVE);
	state = GenericXLogStart(index);
	meta = register_meta(state, meta_buf);
	buf = ReadBuffer(index, meta->rows_tail);
	LockBuffer(buf, BUFFER_LOCK_EXCLUSIVE);
	page = GenericXLogRegisterBuffer(state, buf, 0);
	if (PageAddItem(page, item, size, InvalidOffsetNumber, false, false) == InvalidOffsetNumber)
	{
		Buffer next = index_new_buffer(index);
		Page np = GenericXLogRegisterBuffer(state, next, GENERIC_XLOG_FULL_IMAGE);

		index_init_page(np, PAGE_ROWS);
		if (PageAddItem(np, item, size, InvalidOffsetNumber, false, false) == InvalidOffsetNumber)
			elog(ERROR, "pg_infer: a row item of %zu bytes does not fit a page", size);
		InferPageGetOpaque(page)->next = BufferGetBlockNumber(next);
		meta->rows_tail = BufferGetBlockNumber(next);
		meta->nrows++;
		GenericXLogFinish(state);
		UnlockReleaseBuffer(next);
	}
	else
	{
		meta->nrows++;
		GenericXLogFinish(state);
	}
	UnlockReleaseBuffer(buf);
	UnlockReleaseBuffer(meta_buf);
}
