/*
 * index_model.c: the `infer` access method's second mode, a model store.
 *
 *   CREATE INDEX countries ON infer._models USING infer (name)
 *       WITH (source = '/models/countries.vindex');
 *
 * copies a whole vindex (browse level: gate rows, embeddings, down_meta top
 * tokens, tokenizer) into WAL-logged pages of the index and registers model
 * `countries` (the index's name) with source 'index:countries'. The model
 * then loads from these pages, so it lives and persists with the database
 * (a data directory, IndexedDB, OPFS, dumpDataDir archives) and its source
 * files are no longer needed. The rows of infer._models are not indexed.
 *
 * Pages: block 0 holds the segment directory (which blocks hold what, per
 * layer); each segment is a run of contiguous pages of one type (GATE,
 * EMBED, DOWNMETA, BLOB) whose payload is the part's bytes, in order.
 */
#include "pg_infer.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "guc.h"
#include "host.h"
#include "index.h"

#define MODEL_INDEX_MAGIC 0x584d4e49 /* "INMX" */
#define MODEL_INDEX_VERSION 1
#define PAYLOAD (BLCKSZ - MAXALIGN(SizeOfPageHeaderData) - MAXALIGN(sizeof(InferPageOpaqueData)))

typedef enum SegmentKind
{
	SEG_META = 1, /* the model description (model.h) */
	SEG_GATE,     /* per layer */
	SEG_DOWN,     /* per layer: down_meta top token ids */
	SEG_EMBED,
	SEG_TOKENIZER,
	SEG_TOKENIZER_CONFIG
} SegmentKind;

typedef struct Segment
{
	uint16 kind;
	uint16 unused;
	int32 layer;
	BlockNumber start;
	uint32 nblocks;
	uint64 nbytes;
} Segment;

typedef struct ModelIndexMeta
{
	uint32 magic;
	uint32 version;
	int32 nsegments;
	Segment segments[FLEXIBLE_ARRAY_MEMBER];
} ModelIndexMeta;

#define MAX_SEGMENTS ((PAYLOAD - offsetof(ModelIndexMeta, segments)) / sizeof(Segment))

static InferPageType
page_type_of(SegmentKind kind)
{
	switch (kind)
	{
		case SEG_GATE:
			return PAGE_GATE;
		case SEG_EMBED:
			return PAGE_EMBED;
		case SEG_DOWN:
			return PAGE_DOWNMETA;
		default:
			return PAGE_BLOB;
	}
}

/* Writes bytes as a run of new pages, one GenericXLog record (full image) each. */
static Segment
write_segment(Relation index, SegmentKind kind, int layer, const char *bytes, size_t n)
{
	Segment seg = {kind, 0, layer, InvalidBlockNumber, 0, n};
	size_t done = 0;

	do
	{
		Buffer buf = index_new_buffer(index);
		GenericXLogState *state = GenericXLogStart(index);
		Page page = GenericXLogRegisterBuffer(state, buf, GENERIC_XLOG_FULL_IMAGE);
		size_t take = Min(PAYLOAD, n - done);

		index_init_page(page, page_type_of(kind));
		memcpy(InferPageEntries(page), bytes + done, take);
		((PageHeader) page)->pd_lower = (InferPageEntries(page) - (char *) page) + take;
		if (seg.nblocks++ == 0)
			seg.start = BufferGetBlockNumber(buf);
		GenericXLogFinish(state);
		UnlockReleaseBuffer(buf);
		done += take;
		CHECK_FOR_INTERRUPTS();
	} while (done < n);
	return seg;
}

/* Reads a host part into memory and stores it as a segment. */
static Segment
copy_part(Relation index, const char *name, const char *part, SegmentKind kind, int layer, size_t n)
{
	char *bytes = MemoryContextAllocExtended(CurrentMemoryContext, n > 0 ? n : 1, MCXT_ALLOC_HUGE);
	Segment seg;

	host_model_read(name, part, layer, bytes, n);
	seg = write_segment(index, kind, layer, bytes, n);
	pfree(bytes);
	return seg;
}

static Segment
copy_file(Relation index, const char *name, const char *file, SegmentKind kind)
{
	int len;
	char *bytes = host_model_file(name, file, &len);

	return write_segment(index, kind, -1, bytes, len);
}

static bool
model_registered(const char *name)
{
	Oid argtypes[1] = {TEXTOID};
	Datum args[1] = {CStringGetTextDatum(name)};
	bool found;

	SPI_connect();
	if (SPI_execute_with_args("SELECT 1 FROM infer.models WHERE name = $1", 1, argtypes, args, NULL,
							  true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pg_infer: reading infer.models failed");
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

void
build_model_index(Relation index, const char *source)
{
	const char *name = RelationGetRelationName(index);
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "infer model index build",
											  ALLOCSET_DEFAULT_SIZES);
	InferModel m = {0};
	Buffer meta_buf;
	ModelIndexMeta *meta;
	Segment *segs;
	int nsegs = 0;
	int metalen;
	char *desc;
	GenericXLogState *state;
	Page page;

	model_check_name(name);
	if (model_registered(name))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT), errmsg("model \"%s\" already exists", name),
				 errhint("Name the index after a new model, or drop the model first.")));
	desc = host_model_open(name, source, "browse", infer_data_directory, infer_auto_download,
						   &metalen);
	m.cxt = tmp;
	snprintf(m.name, sizeof(m.name), "%s", name);
	model_parse_meta(&m, desc, metalen);
	if (2 * m.layers + 4 > (int) MAX_SEGMENTS)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("a model index holds at most %d layers, model \"%s\" has %d",
							   (int) (MAX_SEGMENTS - 4) / 2, name, m.layers)));
	segs = palloc(sizeof(Segment) * (2 * m.layers + 4));

	meta_buf = index_new_buffer(index); /* block 0, written last */
	segs[nsegs++] = write_segment(index, SEG_META, -1, desc, metalen);
	for (int l = 0; l < m.layers; l++)
	{
		segs[nsegs++] = copy_part(index, name, "gate", SEG_GATE, l,
								  (size_t) m.features[l] * m.hidden * dtype_size(m.gate_dtype));
		segs[nsegs++] = copy_part(index, name, "down_tokens", SEG_DOWN, l,
								  (size_t) m.features[l] * m.down_top_k * sizeof(int32));
		if (m.layers >= 8 && (l + 1) % (m.layers / 4) == 0)
			ereport(NOTICE,
					(errmsg("model index \"%s\": %d of %d layers stored", name, l + 1, m.layers)));
	}
	segs[nsegs++] = copy_part(index, name, "embed", SEG_EMBED, 0,
							  (size_t) m.vocab * m.hidden * dtype_size(m.embed_dtype));
	segs[nsegs++] = copy_file(index, name, "tokenizer.json", SEG_TOKENIZER);
	segs[nsegs++] = copy_file(index, name, "tokenizer_config.json", SEG_TOKENIZER_CONFIG);

	state = GenericXLogStart(index);
	page = GenericXLogRegisterBuffer(state, meta_buf, GENERIC_XLOG_FULL_IMAGE);
	index_init_page(page, PAGE_META);
	meta = (ModelIndexMeta *) InferPageEntries(page);
	meta->magic = MODEL_INDEX_MAGIC;
	meta->version = MODEL_INDEX_VERSION;
	meta->nsegments = nsegs;
	memcpy(meta->segments, segs, sizeof(Segment) * nsegs);
	((PageHeader) page)->pd_lower = (char *) &meta->segments[nsegs] - (char *) page;
	GenericXLogFinish(state);
	UnlockReleaseBuffer(meta_buf);

	model_register(&m, psprintf("%s%s", MODEL_INDEX_SOURCE_PREFIX, name), "browse");
	host_model_release(name, true);
	MemoryContextDelete(tmp);
}

/* ---- loading ---- */

typedef struct ModelIndexReader
{
	Relation index;
	int nsegments;
	Segment *segments;
} ModelIndexReader;

static const Segment *
find_segment(ModelIndexReader *r, SegmentKind kind, int layer)
{
	for (int i = 0; i < r->nsegments; i++)
		if (r->segments[i].kind == kind && r->segments[i].layer == layer)
			return &r->segments[i];
	ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
					errmsg("model index \"%s\" has no segment %d of layer %d",
						   RelationGetRelationName(r->index), kind, layer),
					errhint("Drop the model and store it again.")));
	return NULL;
}

static void
read_segment(ModelIndexReader *r, const Segment *seg, char *dst)
{
	size_t done = 0;

	for (uint32 b = 0; b < seg->nblocks; b++)
	{
		Buffer buf = ReadBuffer(r->index, seg->start + b);
		size_t take = Min(PAYLOAD, seg->nbytes - done);

		LockBuffer(buf, BUFFER_LOCK_SHARE);
		memcpy(dst + done, InferPageEntries(BufferGetPage(buf)), take);
		UnlockReleaseBuffer(buf);
		done += take;
	}
}

static char *
read_whole(ModelIndexReader *r, SegmentKind kind, int *len)
{
	const Segment *seg = find_segment(r, kind, -1);
	char *out = palloc(seg->nbytes + 1);

	read_segment(r, seg, out);
	out[seg->nbytes] = '\0';
	*len = (int) seg->nbytes;
	return out;
}

char *
model_index_open(const char *index_name, const char *model, int *metalen, void **state)
{
	Oid oid = RangeVarGetRelidExtended(makeRangeVar("infer", (char *) index_name, -1),
									   AccessShareLock, RVR_MISSING_OK, NULL, NULL);
	ModelIndexReader *r = palloc0(sizeof(ModelIndexReader));
	Buffer buf;
	ModelIndexMeta *meta;
	char *tokenizer, *config, *desc;
	int tlen, clen;

	if (!OidIsValid(oid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" is stored in index infer.%s, which does not exist", model,
						index_name),
				 errhint("Drop the model with infer_drop_model('%s') and store it again.", model)));
	r->index = index_open(oid, AccessShareLock);
	buf = ReadBuffer(r->index, 0);
	LockBuffer(buf, BUFFER_LOCK_SHARE);
	meta = (ModelIndexMeta *) InferPageEntries(BufferGetPage(buf));
	if (meta->magic != MODEL_INDEX_MAGIC || meta->version != MODEL_INDEX_VERSION ||
		meta->nsegments <= 0 || meta->nsegments > (int) MAX_SEGMENTS)
	{
		UnlockReleaseBuffer(buf);
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
						errmsg("index infer.%s does not hold a model", index_name)));
	}
	r->nsegments = meta->nsegments;
	r->segments = palloc(sizeof(Segment) * r->nsegments);
	memcpy(r->segments, meta->segments, sizeof(Segment) * r->nsegments);
	UnlockReleaseBuffer(buf);

	desc = read_whole(r, SEG_META, metalen);
	tokenizer = read_whole(r, SEG_TOKENIZER, &tlen);
	config = read_whole(r, SEG_TOKENIZER_CONFIG, &clen);
	host_model_adopt(model, tokenizer, tlen, config, clen);
	*state = r;
	return desc;
}

void
model_index_read(void *state, const char *name, const char *part, int layer, void *dst,
				 size_t nbytes)
{
	ModelIndexReader *r = state;
	SegmentKind kind = strcmp(part, "gate") == 0          ? SEG_GATE
					   : strcmp(part, "down_tokens") == 0 ? SEG_DOWN
					   : strcmp(part, "embed") == 0       ? SEG_EMBED
														  : 0;
	const Segment *seg;

	if (kind == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" is stored in an index, which holds no \"%s\"", name, part)));
	seg = find_segment(r, kind, kind == SEG_EMBED ? 0 : layer);
	if (seg->nbytes != nbytes)
		ereport(ERROR, (errcode(ERRCODE_INDEX_CORRUPTED),
						errmsg("model index \"%s\": %s of layer %d has %llu bytes, expected %zu",
							   RelationGetRelationName(r->index), part, layer,
							   (unsigned long long) seg->nbytes, nbytes)));
	read_segment(r, seg, dst);
}

void
model_index_close(void *state)
{
	ModelIndexReader *r = state;

	index_close(r->index, AccessShareLock);
}
