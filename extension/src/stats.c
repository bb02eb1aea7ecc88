/*
 * stats.c: infer_stats(model text) -> TABLE(model, function, calls, rows,
 *            total_ms, cache_hits, cache_misses, heap_bytes, compute_bytes)
 *          infer_stats_reset() -> void
 *
 * Counters of this backend (PGlite has one), per model and SQL function:
 * calls that finished, rows they returned, wall time in them, and cache
 * lookups (a model already loaded is a hit, one loaded by the call a miss;
 * the <~> constant side's signature too). Loading a model counts under
 * function 'load'. heap_bytes and compute_bytes are the model's now: what
 * its load holds in the WASM heap, and what a host compute backend holds.
 * Counters live in TopMemoryContext and survive transactions; a call that
 * raises an error counts nothing.
 */
#include "pg_infer.h"

#include "fmgr.h"
#include "funcapi.h"
#include "portability/instr_time.h"
#include "utils/builtins.h"

#include "stats.h"

int infer_log_level = INFER_LOG_WARNING;

typedef struct StatsEntry
{
	char model[MODEL_NAME_MAX + 1];
	char function[32];
	int64 calls;
	int64 rows;
	double total_ms;
	int64 hits;
	int64 misses;
} StatsEntry;

typedef struct ComputeBytes
{
	char model[MODEL_NAME_MAX + 1];
	int64 bytes[2]; /* ComputePart: gate rows, forward weights */
} ComputeBytes;

static StatsEntry *entries;
static int nentries, capentries;
static ComputeBytes *compute;
static int ncompute, capcompute;

/* The call between stats_begin and stats_end (calls do not nest). */
static struct
{
	bool active;
	const char *function;
	instr_time start;
	int64 hits;
	int64 misses;
} current;

static void *
grow(void *array, int *cap, Size elem)
{
	int n = *cap ? *cap * 2 : 16;
	void *p = MemoryContextAllocZero(TopMemoryContext, elem * n);

	if (array)
	{
		memcpy(p, array, elem * *cap);
		pfree(array);
	}
	*cap = n;
	return p;
}

static StatsEntry *
entry_for(const char *model, const char *function)
{
	StatsEntry *e;

	for (int i = 0; i < nentries; i++)
		if (strcmp(entries[i].model, model) == 0 && strcmp(entries[i].function, function) == 0)
			return &entries[i];
	if (nentries == capentries)
		entries = grow(entries, &capentries, sizeof(StatsEntry));
	e = &entries[nentries++];
	memset(e, 0, sizeof(*e));
	snprintf(e->model, sizeof(e->model), "%s", model);
	snprintf(e->function, sizeof(e->function), "%s", function);
	return e;
}

void
stats_begin(const char *function)
{
	current.active = true;
	current.function = function;
	current.hits = current.misses = 0;
	INSTR_TIME_SET_CURRENT(current.start);
}

static double
elapsed_ms(instr_time start)
{
	instr_time now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	return INSTR_TIME_GET_MILLISEC(now);
}

void
stats_end(const InferModel *m, int64 rows)
{
	StatsEntry *e;
	double ms;

	if (!current.active)
		return;
	current.active = false;
	ms = elapsed_ms(current.start);
	e = entry_for(m->name, current.function);
	e->calls++;
	e->rows += rows;
	e->total_ms += ms;
	e->hits += current.hits;
	e->misses += current.misses;
	if (infer_log_level >= INFER_LOG_DEBUG)
		ereport(DEBUG1,
				(errmsg_internal("pg_infer: %s on model \"%s\": " INT64_FORMAT
								 " rows in %.3f ms, cache %s",
								 current.function, m->name, rows, ms,
								 current.misses ? "miss" : (current.hits ? "hit" : "unused"))));
}

void
stats_cache(bool hit)
{
	if (!current.active)
		return;
	if (hit)
		current.hits++;
	else
		current.misses++;
}

void
stats_load(const InferModel *m, double ms)
{
	StatsEntry *e = entry_for(m->name, "load");

	e->calls++;
	e->total_ms += ms;
	infer_log_info("pg_infer: loaded model \"%s\" from %s in %.1f ms (%zu bytes in the heap)",
				   m->name, m->source, ms, m->bytes);
}

void
stats_compute_bytes(const char *model, ComputePart part, int64 bytes)
{
	for (int i = 0; i < ncompute; i++)
		if (strcmp(compute[i].model, model) == 0)
		{
			if (part == COMPUTE_PART_ALL)
				compute[i].bytes[0] = compute[i].bytes[1] = bytes;
			else
				compute[i].bytes[part] = bytes;
			return;
		}
	if (ncompute == capcompute)
		compute = grow(compute, &capcompute, sizeof(ComputeBytes));
	snprintf(compute[ncompute].model, sizeof(compute[ncompute].model), "%s", model);
	compute[ncompute].bytes[0] = compute[ncompute].bytes[1] = 0;
	if (part == COMPUTE_PART_ALL)
		compute[ncompute].bytes[0] = compute[ncompute].bytes[1] = bytes;
	else
		compute[ncompute].bytes[part] = bytes;
	ncompute++;
}

int64
stats_compute_bytes_of(const char *model)
{
	for (int i = 0; i < ncompute; i++)
		if (strcmp(compute[i].model, model) == 0)
			return compute[i].bytes[0] + compute[i].bytes[1];
	return 0;
}

PG_FUNCTION_INFO_V1(infer_stats);
PG_FUNCTION_INFO_V1(infer_stats_reset);

/* ordered by model, then function */
static int
cmp_entries(const void *a, const void *b)
{
	const StatsEntry *x = a, *y = b;
	int c = strcmp(x->model, y->model);

	return c != 0 ? c : strcmp(x->function, y->function);
}

Datum
infer_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char *only = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (nentries > 1)
		qsort(entries, nentries, sizeof(StatsEntry), cmp_entries);
	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < nentries; i++)
	{
		const StatsEntry *e = &entries[i];
		const InferModel *m = model_find_loaded(e->model);
		Datum values[9];
		bool nulls[9] = {0};

		if (only && strcmp(only, e->model) != 0)
			continue;
		values[0] = CStringGetTextDatum(e->model);
		values[1] = CStringGetTextDatum(e->function);
		values[2] = Int64GetDatum(e->calls);
		values[3] = Int64GetDatum(e->rows);
		values[4] = Float8GetDatum(e->total_ms);
		values[5] = Int64GetDatum(e->hits);
		values[6] = Int64GetDatum(e->misses);
		values[7] = Int64GetDatum(m ? (int64) m->bytes : 0);
		values[8] = Int64GetDatum(m ? stats_compute_bytes_of(e->model) : 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_VOID();
}

Datum
infer_stats_reset(PG_FUNCTION_ARGS)
{
	nentries = 0;
	current.active = false;
	PG_RETURN_VOID();
}
