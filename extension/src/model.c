/*
 * model.c: the model registry (table infer.models) and loading models into
 * the WASM heap.
 *
 *   infer_create_model(name, source, extract_level) -> name
 *   infer_drop_model(name)
 *   infer_loaded_models() -> (name, bytes): what this backend holds in memory
 *
 * The registry table is the truth about which models exist; memory is a
 * per-backend cache of it. Every lookup checks the table (so a rolled-back
 * create or a drop in another transaction is seen), then loads on first
 * use, so registered models survive closing and reopening a database.
 */
#include "pg_infer.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "portability/instr_time.h"

#include "guc.h"
#include "compute.h"
#include "host.h"
#include "model.h"
#include "stats.h"
#include "remote.h"

PG_FUNCTION_INFO_V1(infer_create_model);
PG_FUNCTION_INFO_V1(infer_drop_model);
PG_FUNCTION_INFO_V1(infer_loaded_models);

/* Models loaded in this backend (allocated in TopMemoryContext). */
#define MAX_LOADED_MODELS 64
static InferModel *loaded[MAX_LOADED_MODELS];
static int nloaded = 0;

static const char *const level_names[] = {"browse", "inference", "all"};

const char *
band_name(LayerBand band)
{
	switch (band)
	{
		case BAND_SYNTAX:
			return "syntax";
		case BAND_KNOWLEDGE:
			return "knowledge";
		case BAND_OUTPUT:
			return "output";
	}
	return "unknown";
}

/*
 * Model names become file names and appear in messages: keep them to a
 * plain identifier-like alphabet.
 */
void
model_check_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("model name must not be empty")));
	if (len > MODEL_NAME_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("model name is too long (%zu bytes; at most %d)", len, MODEL_NAME_MAX)));
	for (const char *p = name; *p; p++)
	{
		char c = *p;
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
				  c == '_' || ((c == '-' || c == '.') && p != name);

		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME), errmsg("invalid model name \"%s\"", name),
					 errdetail("Model names use letters, digits, '_', and '-' or '.' after the "
							   "first character.")));
	}
}

static int
parse_level(const char *level)
{
	for (int i = 0; i < lengthof(level_names); i++)
		if (strcmp(level, level_names[i]) == 0)
			return i;
	ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					errmsg("invalid extract_level \"%s\"", level),
					errhint("Use 'browse', 'inference' or 'all'.")));
	return 0;
}

InferModel *
model_find_loaded(const char *name)
{
	for (int i = 0; i < nloaded; i++)
		if (strcmp(loaded[i]->name, name) == 0)
			return loaded[i];
	return NULL;
}

size_t
model_loaded_bytes(void)
{
	size_t total = 0;

	for (int i = 0; i < nloaded; i++)
		total += loaded[i]->bytes;
	return total;
}

/*
 * An unloaded model is not freed at once: a function still running may hold
 * it (a model dropped and re-created from inside describe()). It is retired
 * and freed when the transaction ends, when no SQL call can hold it.
 */
static List *retired = NIL;
static uint64 next_generation = 1;
/* infer.models when models were last loaded: DROP EXTENSION replaces it */
static Oid registry_relid = InvalidOid;

static void
retire(int i)
{
	InferModel *m = loaded[i];
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	retired = lappend(retired, m);
	MemoryContextSwitchTo(old);
	loaded[i] = loaded[--nloaded];
}

static void
unload(const char *name)
{
	for (int i = 0; i < nloaded; i++)
	{
		if (strcmp(loaded[i]->name, name) != 0)
			continue;
		retire(i);
		host_model_release(name, true);
		return;
	}
}

/* What other modules do as models load and go (model_register_hooks). */
#define MAX_HOOKS 4
static const ModelLoadHooks *hooks[MAX_HOOKS];
static int nhooks = 0;

static void
free_retired(void)
{
	ListCell *lc;

	foreach (lc, retired)
	{
		InferModel *m = lfirst(lc);

		/* a host compute backend drops its copy too (never raises) */
		for (int h = 0; h < nhooks; h++)
			if (hooks[h]->freed)
				hooks[h]->freed(m);
		MemoryContextDelete(m->cxt);
	}
	list_free(retired);
	retired = NIL;
}

/* The host keeps tokenizers of the loaded models only, and no half-open source. */
static void
sync_host(void)
{
	StringInfoData names;
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	initStringInfo(&names);
	for (int i = 0; i < nloaded; i++)
		appendBinaryStringInfo(&names, loaded[i]->name, strlen(loaded[i]->name) + 1);
	host_model_sync(names.data, names.len);
	pfree(names.data);
	MemoryContextSwitchTo(old);
}

static Oid
current_registry_relid(void)
{
	Oid nsp = get_namespace_oid("infer", true);

	return OidIsValid(nsp) ? get_relname_relid("models", nsp) : InvalidOid;
}

/*
 * Models loaded by (sub)transaction `subid` go when it rolls back, or pass to
 * `parent` when it commits (parent InvalidSubTransactionId: for good).
 */
static void
end_subtransaction(SubTransactionId subid, bool commit, SubTransactionId parent)
{
	for (int i = nloaded - 1; i >= 0; i--)
	{
		if (loaded[i]->subid != subid)
			continue;
		if (commit)
			loaded[i]->subid = parent;
		else
			retire(i);
	}
}

static void
model_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/* DROP EXTENSION (and a new CREATE) leaves no model of the old registry */
			if (nloaded > 0 && current_registry_relid() != registry_relid)
				while (nloaded > 0)
					retire(nloaded - 1);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			for (int i = 0; i < nloaded; i++)
				loaded[i]->subid = InvalidSubTransactionId;
			free_retired();
			sync_host();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			for (int i = nloaded - 1; i >= 0; i--)
				if (loaded[i]->subid != InvalidSubTransactionId)
					retire(i);
			free_retired();
			sync_host();
			break;
		default:
			break;
	}
}

static void
model_subxact_callback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid,
					   void *arg)
{
	if (event == SUBXACT_EVENT_COMMIT_SUB)
		end_subtransaction(mySubid, true, parentSubid);
	else if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		end_subtransaction(mySubid, false, InvalidSubTransactionId);
		sync_host();
	}
}

void
model_registry_init(void)
{
	RegisterXactCallback(model_xact_callback, NULL);
	RegisterSubXactCallback(model_subxact_callback, NULL);
}

/* ---- reading the host's description of a model ---- */

typedef struct MetaReader
{
	const char *buf;
	int len;
	int pos; /* byte offset of the next string */
} MetaReader;

static int32
meta_word(const MetaReader *r, int i)
{
	int32 v;

	if ((i + 1) * 4 > r->len)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("pg_infer host returned a truncated model description")));
	memcpy(&v, r->buf + i * 4, 4);
	return v;
}

static const char *
meta_string(MetaReader *r, MemoryContext cxt)
{
	const char *s = r->buf + r->pos;
	size_t n = bounded_strlen(s, r->len - r->pos);

	if (r->pos + (int) n >= r->len)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("pg_infer host returned a truncated model description")));
	r->pos += n + 1;
	return MemoryContextStrdup(cxt, s);
}

static void
check_dim(const char *what, int value, int max)
{
	if (value <= 0 || value > max)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("model has an invalid %s: %d", what, value)));
}

/*
 * Fills m's shape from the host's description and returns the heap bytes
 * its data will need.
 */
size_t
model_parse_meta(InferModel *m, const char *buf, int len)
{
	MetaReader r = {buf, len, 0};
	size_t bytes = 0;
	float scale;
	int32 bits;

	if (meta_word(&r, META_VERSION) != MODEL_META_VERSION)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("pg_infer host speaks model description version %d, expected %d",
							   meta_word(&r, META_VERSION), MODEL_META_VERSION)));
	m->layers = meta_word(&r, META_LAYERS);
	m->hidden = meta_word(&r, META_HIDDEN);
	m->vocab = meta_word(&r, META_VOCAB);
	m->gate_dtype = meta_word(&r, META_GATE_DTYPE);
	m->embed_dtype = meta_word(&r, META_EMBED_DTYPE);
	m->down_top_k = meta_word(&r, META_DOWN_TOP_K);
	bits = meta_word(&r, META_EMBED_SCALE);
	memcpy(&scale, &bits, 4);
	m->embed_scale = scale;
	m->level = meta_word(&r, META_LEVEL);
	check_dim("number of layers", m->layers, 4096);
	check_dim("hidden size", m->hidden, 1 << 16);
	check_dim("vocabulary size", m->vocab, 1 << 24);
	check_dim("down_meta top-k", m->down_top_k, 1024);
	if (!(m->embed_scale > 0 && isfinite(m->embed_scale)))
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("model has an invalid embed_scale: %g", m->embed_scale)));
	if ((m->gate_dtype != GATE_F32 && m->gate_dtype != GATE_F16) ||
		(m->embed_dtype != GATE_F32 && m->embed_dtype != GATE_F16))
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("model has an unknown dtype")));

	m->features = MemoryContextAlloc(m->cxt, sizeof(int) * m->layers);
	m->band = MemoryContextAlloc(m->cxt, sizeof(LayerBand) * m->layers);
	for (int l = 0; l < m->layers; l++)
	{
		m->features[l] = meta_word(&r, META_FIXED_WORDS + l);
		check_dim("number of features", m->features[l], 1 << 20);
		m->band[l] = meta_word(&r, META_FIXED_WORDS + m->layers + l);
		bytes += (size_t) m->features[l] * m->hidden * dtype_size(m->gate_dtype);
		bytes += (size_t) m->features[l] * m->down_top_k * (sizeof(int32) + sizeof(float));
	}
	bytes += (size_t) m->vocab * m->hidden * dtype_size(m->embed_dtype);
	r.pos = (META_FIXED_WORDS + 2 * m->layers) * 4;
	m->architecture = (char *) meta_string(&r, m->cxt);
	m->family = (char *) meta_string(&r, m->cxt);
	return bytes;
}

/*
 * Refuses a load that would take models past infer.max_memory (heap
 * bytes). The hint adds what a hook offers to keep the model out of the
 * heap (compute.c: infer.compute = 'onnx').
 */
static void
check_memory(const InferModel *m, size_t bytes)
{
	size_t used = model_loaded_bytes();
	size_t allowed = (size_t) infer_max_memory_mb * 1024 * 1024;
	const char *outside = NULL;

	if (used + bytes <= allowed)
		return;
	for (int h = 0; h < nhooks && outside == NULL; h++)
		if (hooks[h]->outside_heap_hint)
			outside = hooks[h]->outside_heap_hint(m);
	ereport(
		ERROR,
		(errcode(ERRCODE_OUT_OF_MEMORY),
		 errmsg("loading model \"%s\" needs %zu MB but infer.max_memory allows %d MB", m->name,
				(bytes + 1048575) / 1048576, infer_max_memory_mb),
		 used > 0 ? errdetail("Models already loaded use %zu MB.", (used + 1048575) / 1048576) : 0,
		 outside ? errhint("Raise infer.max_memory (at most %d MB in PGlite), drop other "
						   "models, or %s.",
						   INFER_WASM_HEAP_MAX_MB, outside)
				 : errhint("Raise infer.max_memory (at most %d MB in PGlite) or drop other "
						   "models.",
						   INFER_WASM_HEAP_MAX_MB)));
}

static void *
alloc_part(InferModel *m, size_t nbytes)
{
	return MemoryContextAllocExtended(m->cxt, nbytes > 0 ? nbytes : 1, MCXT_ALLOC_HUGE);
}

/*
 * Loads a model through the host. Its memory context hangs below the
 * current (per-call) context until everything is in place, so an ERROR
 * half-way frees it with the call; only a complete model is kept.
 */
/* Parts of a model come from the host (a vindex) ... */
static void
read_from_host(void *state, const char *name, const char *part, int layer, void *dst, size_t nbytes)
{
	host_model_read(name, part, layer, dst, nbytes);
}

/* ... and stream straight from the host's files into a compute backend (owned models) */
static void
stream_from_host(void *state, const char *name, const char *part, int layer, const char *key,
				 const char *role, int rows, int cols, bool is_f16, size_t nbytes)
{
	host_compute_stage_part(COMPUTE_ONNX, key, role, name, part, layer, rows, cols, is_f16, nbytes);
}

/* Whether a model loading now is backend-owned: a registered hook says so (compute.c). */
static bool
load_owned(const InferModel *m)
{
	for (int h = 0; h < nhooks; h++)
		if (hooks[h]->owns && hooks[h]->owns(m))
			return true;
	return false;
}

/*
 * Loads a model: its description in `meta`, its parts through `read` (a
 * backend-owned model's gate rows and forward matrices through `stream`,
 * or `read` into a transient buffer when `stream` is NULL). Its memory
 * context hangs below the current (per-call) context until everything is in
 * place, so an ERROR half-way frees it with the call; only a complete model
 * is kept.
 */
InferModel *
load_parts(const char *name, const char *source, const char *level, const char *meta, int metalen,
		   PartReadFn read, PartStreamFn stream, void *state)
{
	MemoryContext cxt =
		AllocSetContextCreate(CurrentMemoryContext, "pg_infer model", ALLOCSET_DEFAULT_SIZES);
	InferModel *m = MemoryContextAllocZero(cxt, sizeof(InferModel));
	size_t bytes;
	instr_time started;
	instr_time done;

	INSTR_TIME_SET_CURRENT(started);

	/* a stale copy under this name (a source that changed) is replaced */
	for (int i = 0; i < nloaded; i++)
		if (strcmp(loaded[i]->name, name) == 0)
			retire(i);
	if (nloaded >= MAX_LOADED_MODELS)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("at most %d models can be loaded at once", MAX_LOADED_MODELS),
						errhint("Drop models you no longer use with infer_drop_model().")));
	m->cxt = cxt;
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->source = MemoryContextStrdup(cxt, source);
	m->read_part = read;
	m->stream_part = stream;
	m->read_state = state;
	bytes = model_parse_meta(m, meta, metalen);
	/* what was registered counts: a browse model never holds inference weights */
	m->level = parse_level(level);
	m->owned = load_owned(m);
	/* infer.max_memory counts heap bytes: an owned model's gate rows are not here */
	if (m->owned)
		for (int l = 0; l < m->layers; l++)
			bytes -= (size_t) m->features[l] * m->hidden * dtype_size(m->gate_dtype);
	for (int h = 0; h < nhooks; h++)
		if (hooks[h]->plan)
			bytes += hooks[h]->plan(m);
	check_memory(m, bytes);

	m->gate = MemoryContextAllocZero(cxt, sizeof(GateMatrix) * m->layers);
	m->down_tokens = MemoryContextAlloc(cxt, sizeof(int32 *) * m->layers);
	m->down_logits = MemoryContextAlloc(cxt, sizeof(float *) * m->layers);
	for (int l = 0; l < m->layers; l++)
	{
		size_t gate_bytes = (size_t) m->features[l] * m->hidden * dtype_size(m->gate_dtype);
		size_t down_bytes = (size_t) m->features[l] * m->down_top_k * sizeof(int32);

		m->gate[l].dtype = m->gate_dtype;
		m->gate[l].rows = m->features[l];
		m->gate[l].hidden = m->hidden;
		if (!m->owned)
		{
			m->gate[l].data = alloc_part(m, gate_bytes);
			read(state, name, "gate", l, m->gate[l].data, gate_bytes);
			gate_split_subnormals(&m->gate[l], cxt);
		}
		m->down_tokens[l] = alloc_part(m, down_bytes);
		read(state, name, "down_tokens", l, m->down_tokens[l], down_bytes);
		m->down_logits[l] = alloc_part(m, down_bytes);
		read(state, name, "down_logits", l, m->down_logits[l], down_bytes);
	}
	m->embed = alloc_part(m, (size_t) m->vocab * m->hidden * dtype_size(m->embed_dtype));
	read(state, name, "embed", 0, m->embed,
		 (size_t) m->vocab * m->hidden * dtype_size(m->embed_dtype));
	for (int h = 0; h < nhooks; h++)
		if (hooks[h]->load)
			hooks[h]->load(m);
	m->bytes = bytes;
	m->generation = next_generation++;
	/* e.g. the weights C did not load go to the backend now, from the same source */
	for (int h = 0; h < nhooks; h++)
		if (hooks[h]->loaded)
			hooks[h]->loaded(m);
	m->read_part = NULL;
	m->stream_part = NULL;
	m->read_state = NULL;
	m->subid = GetCurrentSubTransactionId();
	MemoryContextSetParent(cxt, TopMemoryContext);
	INSTR_TIME_SET_CURRENT(done);
	INSTR_TIME_SUBTRACT(done, started);
	stats_load(m, INSTR_TIME_GET_MILLISEC(done));
	registry_relid = current_registry_relid();
	loaded[nloaded++] = m;
	return m;
}

/* The registered sources (model_register_source); the host's vindex files are the default. */
#define MAX_SOURCES 4
static const ModelSource *sources[MAX_SOURCES];
static int nsources = 0;

void
model_register_source(const ModelSource *source)
{
	if (nsources == MAX_SOURCES)
		elog(ERROR, "pg_infer: too many model sources");
	sources[nsources++] = source;
}

void
model_register_hooks(const ModelLoadHooks *h)
{
	if (nhooks == MAX_HOOKS)
		elog(ERROR, "pg_infer: too many model load hooks");
	hooks[nhooks++] = h;
}

static char *
host_open(const char *name, const char *source, const char *level, int *metalen, void **state)
{
	*state = NULL;
	return host_model_open(name, source, level, infer_data_directory, model_open_flags(), metalen);
}

/* keep only the tokenizer on the host side: the rest now lives here (or in the backend) */
static void
host_close(const char *name, void *state)
{
	host_model_release(name, false);
}

static const ModelSource host_source = {
	.prefix = "",
	.open = host_open,
	.read = read_from_host,
	.stream = stream_from_host,
	.close = host_close,
	.exists = NULL,
};

/* The source a source string names, and what follows its prefix. */
static const ModelSource *
source_of(const char *source, const char **rest)
{
	for (int i = 0; i < nsources; i++)
		if (strncmp(source, sources[i]->prefix, strlen(sources[i]->prefix)) == 0)
		{
			*rest = source + strlen(sources[i]->prefix);
			return sources[i];
		}
	*rest = source;
	return &host_source;
}

/* Whether what a source string names is no longer there (a dropped model index). */
static bool
source_gone(const char *source)
{
	const char *rest;
	const ModelSource *src = source_of(source, &rest);

	return src->exists != NULL && !src->exists(rest);
}

static InferModel *
load_model(const char *name, const char *source, const char *level)
{
	const char *rest;
	const ModelSource *src = source_of(source, &rest);
	void *state;
	int metalen;
	char *meta = src->open(name, rest, level, &metalen, &state);
	InferModel *m = load_parts(name, source, level, meta, metalen, src->read, src->stream, state);

	src->close(name, state);
	return m;
}

void
model_with_source(InferModel *m, void (*fn)(InferModel *m))
{
	const char *rest;
	const ModelSource *src = source_of(m->source, &rest);
	int metalen;
	void *state;

	(void) src->open(m->name, rest, level_names[m->level], &metalen, &state);
	m->read_part = src->read;
	m->stream_part = src->stream;
	m->read_state = state;
	fn(m);
	src->close(m->name, state);
	m->read_part = NULL;
	m->stream_part = NULL;
	m->read_state = NULL;
}

/* host_model_open's flags from the GUCs */
int
model_open_flags(void)
{
	return (infer_auto_download ? HOST_OPEN_AUTO_DOWNLOAD : 0) |
		   (infer_verify_checksums ? HOST_OPEN_VERIFY_CHECKSUMS : 0);
}

/* ---- the registry table ---- */

typedef struct RegistryRow
{
	bool found;
	char *source;
	char *level;
	bool remote;      /* backend = 'remote' */
	char *server_url; /* of a remote model */
} RegistryRow;

static RegistryRow
registry_lookup(const char *name)
{
	RegistryRow row = {false, NULL, NULL, false, NULL};
	Oid argtypes[1] = {TEXTOID};
	Datum args[1] = {CStringGetTextDatum(name)};
	MemoryContext caller = CurrentMemoryContext;

	SPI_connect();
	if (SPI_execute_with_args("SELECT source, extract_level, backend, server_url FROM infer.models "
							  "WHERE name = $1",
							  1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "pg_infer: reading infer.models failed");
	if (SPI_processed == 1)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);

		row.found = true;
		row.source = pstrdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
		row.level = pstrdup(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
		{
			char *backend = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
			char *url = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);

			row.remote = backend != NULL && strcmp(backend, "remote") == 0;
			row.server_url = url ? pstrdup(url) : NULL;
		}
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return row;
}

void
model_register(const InferModel *m, const char *source, const char *level)
{
	Oid argtypes[9] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID,
					   INT4OID, INT4OID, INT4OID, TEXTOID};
	Datum args[9];

	args[0] = CStringGetTextDatum(m->name);
	args[1] = CStringGetTextDatum(source);
	args[2] = CStringGetTextDatum(level);
	args[3] = CStringGetTextDatum(m->architecture);
	args[4] = Int32GetDatum(m->layers);
	args[5] = Int32GetDatum(m->hidden);
	args[6] = Int32GetDatum(m->features[0]);
	args[7] = Int32GetDatum(m->vocab);
	args[8] = CStringGetTextDatum(m->gate_dtype == GATE_F16 ? "f16" : "f32");

	SPI_connect();
	if (SPI_execute_with_args("INSERT INTO infer.models (name, source, extract_level, "
							  "architecture, layers, hidden, features, vocab, dtype) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
							  9, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pg_infer: inserting into infer.models failed");
	SPI_finish();
}

static bool
registry_delete(const char *name)
{
	Oid argtypes[1] = {TEXTOID};
	Datum args[1] = {CStringGetTextDatum(name)};
	bool deleted;

	SPI_connect();
	if (SPI_execute_with_args("DELETE FROM infer.models WHERE name = $1", 1, argtypes, args, NULL,
							  false, 0) != SPI_OK_DELETE)
		elog(ERROR, "pg_infer: deleting from infer.models failed");
	deleted = SPI_processed > 0;
	SPI_finish();
	return deleted;
}

bool
model_stored_in_index(const char *index_name)
{
	RegistryRow row = registry_lookup(index_name);

	return row.found &&
		   strncmp(row.source, MODEL_INDEX_SOURCE_PREFIX, strlen(MODEL_INDEX_SOURCE_PREFIX)) == 0 &&
		   strcmp(row.source + strlen(MODEL_INDEX_SOURCE_PREFIX), index_name) == 0;
}

bool
model_exists(const char *name)
{
	return registry_lookup(name).found;
}

bool
model_remote_lookup(const char *name, char **server_url, char **server_model)
{
	RegistryRow row = registry_lookup(name);

	if (!row.found || !row.remote)
		return false;
	if (row.server_url == NULL || row.server_url[0] == '\0')
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("remote model \"%s\" has no server_url in infer.models", name),
						errhint("Register it again with infer_create_model_remote().")));
	*server_url = row.server_url;
	*server_model = row.source;
	return true;
}

void
model_register_remote(const char *name, const char *server_model, const char *level,
					  const char *architecture, int layers, int hidden, int features, int vocab,
					  const char *dtype, const char *server_url)
{
	Oid argtypes[10] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID,
						INT4OID, INT4OID, INT4OID, TEXTOID, TEXTOID};
	Datum args[10];

	args[0] = CStringGetTextDatum(name);
	args[1] = CStringGetTextDatum(server_model);
	args[2] = CStringGetTextDatum(level);
	args[3] = CStringGetTextDatum(architecture);
	args[4] = Int32GetDatum(layers);
	args[5] = Int32GetDatum(hidden);
	args[6] = Int32GetDatum(features);
	args[7] = Int32GetDatum(vocab);
	args[8] = CStringGetTextDatum(dtype);
	args[9] = CStringGetTextDatum(server_url);
	SPI_connect();
	if (SPI_execute_with_args(
			"INSERT INTO infer.models (name, source, extract_level, "
			"architecture, layers, hidden, features, vocab, dtype, backend, "
			"server_url) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'remote', $10)",
			10, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "pg_infer: inserting into infer.models failed");
	SPI_finish();
}

/* ---- lookups for the SQL functions ---- */

InferModel *
model_get(text *name_arg)
{
	char *name;
	bool from_default = (name_arg == NULL);
	RegistryRow row;
	InferModel *m;

	if (from_default)
	{
		if (infer_default_model == NULL || infer_default_model[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("no model given and infer.default_model is not set"),
					 errhint("Pass the model's name, or SET infer.default_model = 'name'.")));
		name = infer_default_model;
	}
	else
		name = text_to_cstring(name_arg);
	model_check_name(name);

	row = registry_lookup(name);
	if (!row.found)
	{
		/* a model dropped or rolled back elsewhere must not linger */
		unload(name);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist%s", name,
						from_default ? " (it is infer.default_model)" : ""),
				 errhint("infer_models() lists the models; infer_create_model() adds one.")));
	}
	if (row.remote)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" is remote (served by %s): this needs a local model", name,
						row.server_url ? row.server_url : "a model server"),
				 errhint("walk(), describe(), infer(), similar_to(), implies(), <~>, the column "
						 "index and the other query functions answer from the server; for "
						 "infer_diff() or the stored-model index, register the vindex locally "
						 "with infer_create_model().")));
	m = model_find_loaded(name);
	/* a model whose source is gone (a dropped model index) is gone with it */
	if (m != NULL && source_gone(row.source))
	{
		unload(name);
		m = NULL;
	}
	if (m != NULL && strcmp(m->source, row.source) == 0)
	{
		stats_cache(true);
		return m;
	}
	if (m != NULL)
		unload(name);
	stats_cache(false);
	return load_model(name, row.source, row.level);
}

static char *
required_text_arg(FunctionCallInfo fcinfo, int i, const char *what)
{
	return text_to_cstring(required_text(fcinfo, i, what));
}

/* infer_create_model(name text, source text, extract_level text) -> text */
Datum
infer_create_model(PG_FUNCTION_ARGS)
{
	char *name = required_text_arg(fcinfo, 0, "model name");
	char *source = required_text_arg(fcinfo, 1, "source");
	char *level = PG_ARGISNULL(2) ? "browse" : text_to_cstring(PG_GETARG_TEXT_PP(2));
	InferModel *m;

	model_check_name(name);
	parse_level(level);
	if (source[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("source must not be empty"),
				 errhint("Give a vindex directory, an http(s):// URL of one, or "
						 "hf://org/model.")));
	if (strncmp(source, "hf://", 5) == 0 && !infer_auto_download)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("cannot download \"%s\": infer.auto_download is off", source),
						errhint("SET infer.auto_download = on, or extract the model with "
								"`pglite-infer extract` and register the vindex.")));
	if (registry_lookup(name).found)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT), errmsg("model \"%s\" already exists", name),
				 errhint("Drop it first with infer_drop_model('%s').", name)));

	unload(name);
	m = load_model(name, source, level);
	model_register(m, m->source, level);
	PG_RETURN_TEXT_P(cstring_to_text(name));
}

/* The first `infer` index built on a model, or NULL. */
static char *
index_using_model(const char *name)
{
	Oid argtypes[1] = {TEXTOID};
	Datum args[1] = {CStringGetTextDatum(name)};
	MemoryContext caller = CurrentMemoryContext;
	char *found = NULL;
	char *value;

	/* the query the registry's trigger asks too (pg_infer--0.1.0.sql) */
	SPI_connect();
	if (SPI_execute_with_args("SELECT infer._index_using_model($1)", 1, argtypes, args, NULL, true,
							  1) != SPI_OK_SELECT)
		elog(ERROR, "pg_infer: looking for indexes that use a model failed");
	value = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (value != NULL)
		found = MemoryContextStrdup(caller, value);
	SPI_finish();
	return found;
}

/* infer_drop_model(model_name text) -> text */
Datum
infer_drop_model(PG_FUNCTION_ARGS)
{
	char *name = required_text_arg(fcinfo, 0, "model name");
	char *index;
	RegistryRow row;

	model_check_name(name);
	index = index_using_model(name);
	if (index != NULL)
		ereport(ERROR, (errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
						errmsg("cannot drop model \"%s\" because index %s uses it", name, index),
						errhint("DROP INDEX %s first.", index)));
	row = registry_lookup(name);
	if (!registry_delete(name))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT), errmsg("model \"%s\" does not exist", name),
				 errhint("infer_models() lists the models.")));
	unload(name);
	/* a model stored in an index goes with its index */
	if (strncmp(row.source, MODEL_INDEX_SOURCE_PREFIX, strlen(MODEL_INDEX_SOURCE_PREFIX)) == 0)
	{
		SPI_connect();
		SPI_execute(psprintf("DROP INDEX IF EXISTS infer.%s",
							 quote_identifier(row.source + strlen(MODEL_INDEX_SOURCE_PREFIX))),
					false, 0);
		SPI_finish();
	}
	PG_RETURN_TEXT_P(cstring_to_text(psprintf("model '%s' dropped", name)));
}

/*
 * infer_loaded_models() -> setof (name text, bytes bigint, compute_bytes bigint, owner text):
 * owner is the backend that holds the gate and forward matrices ('heap', or
 * 'onnx' for a backend-owned model).
 */
Datum
infer_loaded_models(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < nloaded; i++)
	{
		Datum values[4];
		bool nulls[4] = {false, false, false, false};

		values[0] = CStringGetTextDatum(loaded[i]->name);
		values[1] = Int64GetDatum((int64) loaded[i]->bytes);
		values[2] = Int64GetDatum(stats_compute_bytes_of(loaded[i]->name));
		values[3] = CStringGetTextDatum(loaded[i]->owned ? "onnx" : "heap");
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}
