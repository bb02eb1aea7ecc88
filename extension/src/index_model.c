/*
 * index_model.c: the `infer` access method's second mode, a model store.
 *
 *   CREATE INDEX countries ON infer._models USING infer (name)
 *       WITH (source = '/models/countries.vindex');
 *
 * copies a whole vindex (gate rows, embeddings, down_meta top tokens,
 * tokenizer, and the inference weights at WITH (level = 'inference')) into
 * WAL-logged pages of the index and registers model
 * `countries` (the index's name) with source 'index:countries'. The model
 * then loads from these pages, so it lives and persists with the database
 * (a data directory, IndexedDB, OPFS, dumpDataDir archives) and its source
 * files are no longer needed. The rows of infer._models are not indexed.
 *
 * Pages: each part is a segment, a run of contiguous pages of one type
 * (GATE, EMBED, DOWNMETA, WEIGHT, BLOB) whose payload is the part's bytes in
 * order; the directory of segments (name, layer, blocks, bytes) is a segment
 * too, and block 0 (META) points to it.
 */
#include "pg_infer.h"

#include "deadline.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "compute.h"
#include "guc.h"
#include "host.h"
#include "index.h"

#define MODEL_INDEX_MAGIC 0x584d4e49 /* "INMX" */
#define MODEL_INDEX_VERSION 3        /* 3: down_logits */
#define PAYLOAD (BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(sizeof(InferPageOpaqueData)))

/*
 * A named run of pages: a model part ("gate" of layer 3, "embed",
 * "weight:layers.0.self_attn.q_proj.weight", "tokenizer.json", ...).
 * The list of segments is itself stored as a segment, the directory, which
 * block 0 points to.
 */
typedef struct Segment
{
	char name[104];
	int32 layer;
	BlockNumber start;
	uint32 nblocks;
	uint64 nbytes;
} Segment;

typedef struct ModelIndexMeta
{
	uint32 magic;
	uint32 version;
	char level[16];
	Segment directory; /* the Segment array, as a segment of its own */
} ModelIndexMeta;

typedef struct ModelIndexSnapshot ModelIndexSnapshot;
static ModelIndexSnapshot *find_snapshot(Oid index);
static void rebuild_from_snapshot(Relation index, ModelIndexSnapshot *snap);

static InferPageType
page_type_of(const char *name)
{
	if (strcmp(name, "gate") == 0)
		return PAGE_GATE;
	if (strcmp(name, "embed") == 0)
		return PAGE_EMBED;
	if (strcmp(name, "down_tokens") == 0 || strcmp(name, "down_logits") == 0)
		return PAGE_DOWNMETA;
	if (strncmp(name, "weight:", 7) == 0)
		return PAGE_WEIGHT;
	return PAGE_BLOB;
}

/* Writes bytes as a run of new pages, one GenericXLog record (full image) each. */
static Segment
write_segment(Relation index, const char *name, int layer, const char *bytes, size_t n)
{
	Segment seg = {{0}, layer, InvalidBlockNumber, 0, n};
	size_t done = 0;

	if (strlen(name) >= sizeof(seg.name))
		ereport(ERROR, (errcode(ERRCODE_NAME_TOO_LONG),
						errmsg("model part name \"%s\" is too long for a model index", name)));
	snprintf(seg.name, sizeof(seg.name), "%s", name);
	do
	{
		Buffer buf = index_new_buffer(index);
		GenericXLogState *state = GenericXLogStart(index);
		Page page = GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE);
		size_t take = Min(PAYLOAD, n - done);

		index_init_page(page, page_type_of(name));
		memcpy(InferPageEntries(page), bytes + done, take);
		((PageHeader) page)->pd_lower = (InferPageEntries(page) - (char *) page) + take;
		if (seg.nblocks++ == 0)
			seg.start = BufferGetBlockNumber(buf);
		GenericXLogFinish(state);
		UnlockReleaseBuffer(buf);
		done += take;
		INFER_CHECK_INTERRUPTS();
	} while (done < n);
	return seg;
}

/* Block 0: where the directory of segments is, and the level stored. */
static void
write_meta_page(Relation index, Buffer meta_buf, const char *level, Segment dir)
{
	GenericXLogState *state = GenericXLogStart(index);
	Page page = GenericXLogRegisterBuffer(state, meta_buf, GENERIC_XLOG_FULL_IMAGE);
	ModelIndexMeta *meta;

	index_init_page(page, PAGE_META);
	meta = (ModelIndexMeta *) InferPageEntries(page);
	memset(meta, 0, sizeof(ModelIndexMeta));
	meta->magic = MODEL_INDEX_MAGIC;
	meta->version = MODEL_INDEX_VERSION;
	snprintf(meta->level, sizeof(meta->level), "%s", level);
	meta->directory = dir;
	((PageHeader) page)->pd_lower = (char *) (meta + 1) - (char *) page;
	GenericXLogFinish(state);
	UnlockReleaseBuffer(meta_buf);
}

/* The build reads each part from the host and stores it as it goes. */
typedef struct Recorder
{
	Relation index;
	Segment *segs;
	int nsegs;
	int cap;
	int layers;
} Recorder;

static void
record(Recorder *r, Segment seg)
{
	if (r->nsegs == r->cap)
	{
		r->cap *= 2;
		r->segs = repalloc(r->segs, sizeof(Segment) * r->cap);
	}
	r->segs[r->nsegs++] = seg;
}

static void
read_and_store(void *state, const char *name, const char *part, int layer, void *dst, size_t nbytes)
{
	Recorder *r = state;

	host_model_read(name, part, layer, dst, nbytes);
	record(r, write_segment(r->index, part, layer, dst, nbytes));
	if (strcmp(part, "down_tokens") == 0 && r->layers >= 8 && (layer + 1) % (r->layers / 4) == 0)
		ereport(NOTICE,
				(errmsg("model index \"%s\": %d of %d layers stored", name, layer + 1, r->layers)));
}

static void
store_file(Recorder *r, const char *name, const char *file)
{
	int len;
	char *bytes = host_model_file(name, file, &len);

	record(r, write_segment(r->index, file, -1, bytes, len));
}

/*
 * Loads the model from its source exactly as infer_create_model would, with
 * a reader that also writes every part it reads into the index: the pages
 * then hold everything a later load needs, at the level asked for, and the
 * model is loaded in this backend already.
 */
void
build_model_index(Relation index, const char *source, const char *level)
{
	const char *name = RelationGetRelationName(index);
	char *src = psprintf("%s%s", MODEL_INDEX_SOURCE_PREFIX, name);
	Recorder r = {index, palloc(sizeof(Segment) * 64), 0, 64, 0};
	Buffer meta_buf;
	int metalen;
	char *desc;
	InferModel *m;
	Segment dir;

	model_check_name(name);
	/* anywhere else its pages would outlive the registry's view of them */
	if (RelationGetNamespace(index) != get_namespace_oid("infer", true) ||
		strcmp(get_rel_name(index->rd_index->indrelid), "_models") != 0)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						errmsg("a model index is built on infer._models, not on \"%s\"",
							   get_rel_name(index->rd_index->indrelid)),
						errhint("CREATE INDEX %s ON infer._models USING infer (name) WITH (source "
								"= ...).",
								quote_identifier(name))));
	if (model_stored_in_index(name))
	{
		/* a rebuild of this very index (REINDEX, VACUUM FULL, TRUNCATE, CLUSTER) */
		ModelIndexSnapshot *snap = find_snapshot(RelationGetRelid(index));

		if (snap == NULL)
			ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
							errmsg("cannot rebuild model index infer.%s: its model was not copied "
								   "before the rebuild",
								   name),
							errhint("Rebuild it with REINDEX INDEX infer.%s.", name)));
		rebuild_from_snapshot(index, snap);
		return;
	}
	if (model_exists(name))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT), errmsg("model \"%s\" already exists", name),
				 errhint("Name the index after a new model, or drop the model first.")));
	meta_buf = index_new_buffer(index); /* block 0, written last */
	desc = host_model_open(name, source, level, infer_data_directory, model_open_flags(), &metalen);
	r.layers = ((int32 *) desc)[META_LAYERS];
	record(&r, write_segment(index, "meta", -1, desc, metalen));
	m = load_parts(name, src, level, desc, metalen, read_and_store, NULL, &r);
	store_file(&r, name, "tokenizer.json");
	store_file(&r, name, "tokenizer_config.json");
	dir = write_segment(index, "directory", -1, (char *) r.segs, sizeof(Segment) * r.nsegs);
	write_meta_page(index, meta_buf, level, dir);

	model_register(m, src, level);
	/* the model stays loaded; the host keeps only its tokenizer */
	host_model_release(name, false);
}

/* ---- loading ---- */

typedef struct ModelIndexReader
{
	Relation index;
	int nsegments;
	Segment *segments;
} ModelIndexReader;

static const Segment *
find_segment(ModelIndexReader *r, const char *name, int layer)
{
	for (int i = 0; i < r->nsegments; i++)
		if (strcmp(r->segments[i].name, name) == 0 && r->segments[i].layer == layer)
			return &r->segments[i];
	ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
					errmsg("model index \"%s\" holds no \"%s\" of layer %d",
						   RelationGetRelationName(r->index), name, layer),
					errhint("Store the model at the level you register it with.")));
	return NULL;
}

static void
read_segment(Relation index, const Segment *seg, char *dst)
{
	size_t done = 0;

	for (uint32 b = 0; b < seg->nblocks; b++)
	{
		Buffer buf = ReadBuffer(index, seg->start + b);
		size_t take = Min(PAYLOAD, seg->nbytes - done);

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		memcpy(dst + done, InferPageEntries(BufferGetPage(buf)), take);
		UnlockReleaseBuffer(buf);
		done += take;
	}
}

static char *
read_whole(ModelIndexReader *r, const char *name, int *len)
{
	const Segment *seg = find_segment(r, name, -1);
	char *out = palloc(seg->nbytes + 1);

	read_segment(r->index, seg, out);
	out[seg->nbytes] = '\0';
	*len = (int) seg->nbytes;
	return out;
}

/* Block 0 of a model index, checked: the level stored and where the directory is. */
static ModelIndexMeta
read_model_meta(Relation index)
{
	ModelIndexMeta meta;
	Buffer buf = ReadBuffer(index, 0);

	LockBuffer(buf, BUFFER_LOCK_SHARE);
	memcpy(&meta, InferPageEntries(BufferGetPage(buf)), sizeof(meta));
	UnlockReleaseBuffer(buf);
	if (meta.magic == MODEL_INDEX_MAGIC && meta.version != MODEL_INDEX_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model index infer.%s has layout version %u; this pg_infer reads %d",
						RelationGetRelationName(index), meta.version, MODEL_INDEX_VERSION),
				 errhint("Drop it and create it again from its source: DROP INDEX infer.%s; "
						 "CREATE INDEX %s ON infer._models USING infer (name) WITH (source = ...).",
						 RelationGetRelationName(index), RelationGetRelationName(index))));
	if (meta.magic != MODEL_INDEX_MAGIC || meta.directory.nbytes % sizeof(Segment) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INDEX_CORRUPTED),
				 errmsg("index infer.%s does not hold a model", RelationGetRelationName(index))));
	return meta;
}

static bool
model_index_exists(const char *index_name)
{
	return OidIsValid(RangeVarGetRelidExtended(makeRangeVar("infer", (char *) index_name, -1),
											   NoLock, RVR_MISSING_OK, NULL, NULL));
}

static char *
model_index_open(const char *model, const char *index_name, const char *level, int *metalen,
				 void **state)
{
	Oid oid = RangeVarGetRelidExtended(makeRangeVar("infer", (char *) index_name, -1),
									   AccessShareLock, RVR_MISSING_OK, NULL, NULL);
	ModelIndexReader *r = palloc0(sizeof(ModelIndexReader));
	ModelIndexMeta meta;
	char *tokenizer, *config, *desc;
	int tlen, clen;

	if (!OidIsValid(oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" is stored in index infer.%s, which does not exist", model,
						index_name),
				 errhint("Drop the model with infer_drop_model('%s') and store it again.", model)));
	r->index = index_open(oid, AccessShareLock);
	meta = read_model_meta(r->index);
	r->nsegments = meta.directory.nbytes / sizeof(Segment);
	r->segments = palloc(meta.directory.nbytes + 1);
	read_segment(r->index, &meta.directory, (char *) r->segments);

	desc = read_whole(r, "meta", metalen);
	tokenizer = read_whole(r, "tokenizer.json", &tlen);
	config = read_whole(r, "tokenizer_config.json", &clen);
	host_model_adopt(model, tokenizer, tlen, config, clen);
	*state = r;
	return desc;
}

static void
model_index_read(void *state, const char *name, const char *part, int layer, void *dst,
				 size_t nbytes)
{
	ModelIndexReader *r = state;
	const Segment *seg = find_segment(r, part, layer);

	if (seg->nbytes != nbytes)
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
						errmsg("model index \"%s\": %s of layer %d has %llu bytes, expected %zu",
							   RelationGetRelationName(r->index), part, layer,
							   (unsigned long long) seg->nbytes, nbytes)));
	read_segment(r->index, seg, dst);
}

/*
 * Streams a segment into the compute backend in chunks of about
 * STREAM_CHUNK bytes (whole pages' payloads), never the whole part at once.
 */
#define STREAM_CHUNK (256 * 1024)

static void
model_index_stream(void *state, const char *name, const char *part, int layer, const char *key,
				   const char *role, int rows, int cols, bool is_f16, size_t nbytes)
{
	ModelIndexReader *r = state;
	const Segment *seg = find_segment(r, part, layer);
	char *chunk;
	size_t filled = 0, sent = 0, done = 0;

	if (seg->nbytes != nbytes)
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
						errmsg("model index \"%s\": %s of layer %d has %llu bytes, expected %zu",
							   RelationGetRelationName(r->index), part, layer,
							   (unsigned long long) seg->nbytes, nbytes)));
	chunk = palloc(STREAM_CHUNK + PAYLOAD);
	for (uint32 b = 0; b < seg->nblocks; b++)
	{
		Buffer buf = ReadBuffer(r->index, seg->start + b);
		size_t take = Min(PAYLOAD, seg->nbytes - done);

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		memcpy(chunk + filled, InferPageEntries(BufferGetPage(buf)), take);
		UnlockReleaseBuffer(buf);
		done += take;
		filled += take;
		if (filled >= STREAM_CHUNK || done == seg->nbytes)
		{
			host_compute_stage_chunk(COMPUTE_ONNX, key, role, rows, cols, is_f16, sent, chunk,
									 filled, nbytes);
			sent += filled;
			filled = 0;
			INFER_CHECK_INTERRUPTS();
		}
	}
	if (nbytes == 0)
		host_compute_stage_chunk(COMPUTE_ONNX, key, role, rows, cols, is_f16, 0, chunk, 0, 0);
	pfree(chunk);
}

static void
model_index_close(const char *name, void *state)
{
	ModelIndexReader *r = state;

	index_close(r->index, AccessShareLock);
}

/* The registry opens 'index:<name>' sources through these (model.h ModelSource). */
static const ModelSource index_source = {
	.prefix = MODEL_INDEX_SOURCE_PREFIX,
	.open = model_index_open,
	.read = model_index_read,
	.stream = model_index_stream,
	.close = model_index_close,
	.exists = model_index_exists,
};

/* An aborted rebuild leaves no copies of the pages behind. */
static void
forget_on_abort(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		model_index_forget_snapshots();
}

void
model_index_init(void)
{
	model_register_source(&index_source);
	RegisterXactCallback(forget_on_abort, NULL);
}

/* ---- rebuilding: REINDEX, VACUUM FULL, TRUNCATE and CLUSTER of infer._models ---- */

/*
 * A rebuild gives the index a new, empty relfilenode before it calls the
 * build, so the pages that hold the model are out of reach by then, and the
 * source the model came from may be long gone. The utility hook
 * (utility.c) therefore copies every model index's segments into memory
 * before such a statement runs, and the build writes them back.
 */
typedef struct SnapshotSegment
{
	Segment seg;
	char *bytes;
} SnapshotSegment;

typedef struct ModelIndexSnapshot
{
	Oid index;
	char level[16];
	int nsegments;
	SnapshotSegment *segments;
} ModelIndexSnapshot;

static MemoryContext snapshot_cxt = NULL;
static List *snapshots = NIL;

void
model_index_forget_snapshots(void)
{
	if (snapshot_cxt)
		MemoryContextDelete(snapshot_cxt);
	snapshot_cxt = NULL;
	snapshots = NIL;
}

static void
snapshot_one(Oid oid)
{
	Relation index = index_open(oid, AccessShareLock);
	ModelIndexSnapshot *snap = palloc0(sizeof(ModelIndexSnapshot));
	ModelIndexMeta meta = read_model_meta(index);
	Segment *dir;

	snap->index = oid;
	memcpy(snap->level, meta.level, sizeof(snap->level));
	snap->nsegments = meta.directory.nbytes / sizeof(Segment);
	dir = palloc(meta.directory.nbytes + 1);
	read_segment(index, &meta.directory, (char *) dir);
	snap->segments = palloc0(sizeof(SnapshotSegment) * Max(snap->nsegments, 1));
	for (int i = 0; i < snap->nsegments; i++)
	{
		snap->segments[i].seg = dir[i];
		snap->segments[i].bytes = MemoryContextAllocHuge(snapshot_cxt, dir[i].nbytes + 1);
		read_segment(index, &dir[i], snap->segments[i].bytes);
		INFER_CHECK_INTERRUPTS();
	}
	index_close(index, AccessShareLock);
	snapshots = lappend(snapshots, snap);
}

void
model_index_snapshot_all(void)
{
	Oid nsp = get_namespace_oid("infer", true);
	MemoryContext old;
	List *oids = NIL;
	ListCell *lc;

	model_index_forget_snapshots();
	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("models", nsp)))
		return;
	snapshot_cxt = AllocSetContextCreate(TopMemoryContext, "pg_infer model index snapshots",
										 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(snapshot_cxt);
	SPI_connect();
	if (SPI_execute("SELECT substr(source, length('" MODEL_INDEX_SOURCE_PREFIX "') + 1) "
					"FROM infer.models WHERE starts_with(source, '" MODEL_INDEX_SOURCE_PREFIX "')",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "pg_infer: reading infer.models failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		Oid oid = get_relname_relid(name, nsp);

		if (OidIsValid(oid))
		{
			MemoryContext spi = MemoryContextSwitchTo(snapshot_cxt);

			oids = lappend_oid(oids, oid);
			MemoryContextSwitchTo(spi);
		}
	}
	SPI_finish();
	MemoryContextSwitchTo(snapshot_cxt);
	foreach (lc, oids)
		snapshot_one(lfirst_oid(lc));
	MemoryContextSwitchTo(old);
}

static ModelIndexSnapshot *
find_snapshot(Oid index)
{
	ListCell *lc;

	foreach (lc, snapshots)
		if (((ModelIndexSnapshot *) lfirst(lc))->index == index)
			return lfirst(lc);
	return NULL;
}

/* Writes a snapshot back into the index's new pages: the same segments, new blocks. */
static void
rebuild_from_snapshot(Relation index, ModelIndexSnapshot *snap)
{
	Buffer meta_buf = index_new_buffer(index); /* block 0, written last */
	Segment *segs = palloc(sizeof(Segment) * Max(snap->nsegments, 1));

	for (int i = 0; i < snap->nsegments; i++)
	{
		Segment *s = &snap->segments[i].seg;

		segs[i] = write_segment(index, s->name, s->layer, snap->segments[i].bytes, s->nbytes);
	}
	write_meta_page(
		index, meta_buf, snap->level,
		write_segment(index, "directory", -1, (char *) segs, sizeof(Segment) * snap->nsegments));
}
