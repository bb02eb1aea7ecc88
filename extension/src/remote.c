/*
 * remote.c: models served by a model server (`pglite-infer serve`,
 * docs/remote-models.md).
 *
 *   infer_create_model_remote(model_name, server_url) -> text
 *   infer_create_models_remote(model_names[], server_url) -> int
 *   infer_detect_server() -> text
 *   infer_server_stats(model_name) -> (stat_name, stat_value)
 *
 * A remote model is a row of infer.models with backend 'remote', its
 * server's URL in server_url and the server's name for it in source. Every
 * query function starts with REMOTE_DISPATCH (remote.h): when its model is
 * remote, the call travels whole to the server (POST /v1/pglite/call: the
 * function's name, its arguments as text with their types, the settings that
 * change answers), which runs the same function on a local copy of the model;
 * the rows come back as text and go through this function's own result type.
 * So a remote model answers exactly as a local one of the same vindex.
 */
#include "pg_infer.h"

#include <errno.h>

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "deadline.h"
#include "guc.h"
#include "host.h"
#include "knowledge.h"
#include "model.h"
#include "remote.h"

PG_FUNCTION_INFO_V1(infer_create_model_remote);
PG_FUNCTION_INFO_V1(infer_create_models_remote);
PG_FUNCTION_INFO_V1(infer_detect_server);
PG_FUNCTION_INFO_V1(infer_server_stats);

/* Settings whose values change pg_infer's answers: they travel with each call. */
static const char *const forwarded_settings[] = {
	"infer.gate_threshold", "infer.describe_top_k",  "infer.walk_embed_mode",
	"infer.max_context",    "infer.max_input_bytes",
};

static char *split_url(const char *server_url, char **fragment);

/* The model a call names: its argument, else infer.default_model; NULL when neither. */
static char *
called_model(FunctionCallInfo fcinfo, int model_argno)
{
	if (model_argno < PG_NARGS() && !PG_ARGISNULL(model_argno))
		return text_to_cstring(PG_GETARG_TEXT_PP(model_argno));
	if (infer_default_model == NULL || infer_default_model[0] == '\0')
		return NULL;
	return pstrdup(infer_default_model);
}

static void
append_json_string(StringInfo buf, const char *s)
{
	escape_json(buf, s);
}

/*
 * Whether `cell` is a well-formed value of a scalar type the query functions
 * return (their other types, arrays, go to the type's input function).
 */
static bool
cell_ok(const char *cell, Oid type)
{
	char *end;

	switch (type)
	{
		case INT4OID:
		case INT8OID:
		case INT2OID:
			errno = 0;
			(void) strtoll(cell, &end, 10);
			return end != cell && *end == '\0' && errno == 0;
		case FLOAT8OID:
		case FLOAT4OID:
			if (strcmp(cell, "NaN") == 0 || strcmp(cell, "Infinity") == 0 ||
				strcmp(cell, "-Infinity") == 0)
				return true;
			(void) strtod(cell, &end);
			return end != cell && *end == '\0';
		case BOOLOID:
			return strcmp(cell, "t") == 0 || strcmp(cell, "f") == 0 || strcmp(cell, "true") == 0 ||
				   strcmp(cell, "false") == 0;
		case FLOAT4ARRAYOID:
		case FLOAT8ARRAYOID:
		case TEXTARRAYOID:
		case INT4ARRAYOID:
			return cell[0] == '{' && cell[strlen(cell) - 1] == '}';
		default:
			return true;
	}
}

/* One cell of the server's answer into a Datum of type `type`; garbage raises XX001. */
static Datum
cell_datum(const char *url, const char *cell, Oid type, int32 typmod)
{
	Oid input;
	Oid ioparam;

	if (!cell_ok(cell, type))
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("the model server at %s answered \"%.60s\" where a value of type %s "
							   "belongs",
							   url, cell, format_type_be(type))));
	getTypeInputInfo(type, &input, &ioparam);
	return OidInputFunctionCall(input, (char *) cell, ioparam, typmod);
}

/*
 * POST /v1/pglite/call of `function` on the server's model `server_model`:
 * nargs arguments given as (format_type spelling, text or NULL), argument
 * model_argno being the model; with the forwarded settings and the
 * statement's remaining time. Raises on every failure.
 */
static RemoteAnswer *
remote_call(const char *server_url, const char *server_model, const char *function, int nargs,
			const char *const *types, const char *const *values, int model_argno)
{
	StringInfoData body;
	char *fragment;
	char *url;

	initStringInfo(&body);
	appendStringInfoString(&body, "{\"model\":");
	append_json_string(&body, server_model);
	appendStringInfoString(&body, ",\"function\":");
	append_json_string(&body, function);
	appendStringInfo(&body, ",\"model_arg\":%d,\"args\":[", model_argno);
	for (int i = 0; i < nargs; i++)
	{
		if (i > 0)
			appendStringInfoChar(&body, ',');
		appendStringInfoString(&body, "{\"type\":");
		append_json_string(&body, types[i]);
		appendStringInfoString(&body, ",\"value\":");
		if (i == model_argno)
			append_json_string(&body, server_model);
		else if (values[i] == NULL)
			appendStringInfoString(&body, "null");
		else
			append_json_string(&body, values[i]);
		appendStringInfoChar(&body, '}');
	}
	appendStringInfoString(&body, "],\"settings\":{");
	for (int i = 0; i < lengthof(forwarded_settings); i++)
	{
		const char *v = GetConfigOption(forwarded_settings[i], true, false);

		if (i > 0)
			appendStringInfoChar(&body, ',');
		append_json_string(&body, forwarded_settings[i]);
		appendStringInfoChar(&body, ':');
		append_json_string(&body, v ? v : "");
	}
	appendStringInfoChar(&body, '}');
	{
		int left = infer_deadline_left_ms();
		int timeout = left >= 0 && left < infer_remote_timeout_ms ? left : infer_remote_timeout_ms;

		appendStringInfo(&body, ",\"timeout_ms\":%d}", Max(timeout, 1));
	}
	url = split_url(server_url, &fragment);
	return host_remote_request(url, "/v1/pglite/call", body.data, REMOTE_ANSWER_TABLE);
}

bool
remote_dispatch(FunctionCallInfo fcinfo, const char *function, int model_argno, Datum *result)
{
	char *name = called_model(fcinfo, model_argno);
	char *url;
	char *server_model;
	Oid fn = fcinfo->flinfo ? fcinfo->flinfo->fn_oid : InvalidOid;
	Oid *argtypes;
	int nargs;
	Oid rettype;
	int nsend;
	const char **types;
	const char **values;
	RemoteAnswer *a;

	/* the local path raises the clear errors (no model, bad name, unknown model) */
	if (name == NULL || !OidIsValid(fn))
		return false;
	for (const char *p = name; *p; p++)
		if (!(isalnum((unsigned char) *p) || *p == '_' || *p == '-' || *p == '.'))
			return false;
	if (strlen(name) > MODEL_NAME_MAX || !model_remote_lookup(name, &url, &server_model))
		return false;

	nargs = PG_NARGS();
	argtypes = palloc(sizeof(Oid) * (nargs + 1));
	{
		HeapTuple proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
		Form_pg_proc form;

		if (!HeapTupleIsValid(proc))
			elog(ERROR, "pg_infer: no pg_proc entry for function %u", fn);
		form = (Form_pg_proc) GETSTRUCT(proc);
		rettype = form->prorettype;
		for (int i = 0; i < nargs; i++)
			argtypes[i] = i < form->pronargs ? form->proargtypes.values[i] : TEXTOID;
		ReleaseSysCache(proc);
	}
	nsend = Max(nargs, model_argno + 1);
	types = palloc(sizeof(char *) * nsend);
	values = palloc(sizeof(char *) * nsend);
	for (int i = 0; i < nsend; i++)
	{
		Oid type = i < nargs ? argtypes[i] : TEXTOID;

		types[i] = format_type_be(type);
		values[i] = NULL;
		if (i != model_argno && i < PG_NARGS() && !PG_ARGISNULL(i))
		{
			Oid out;
			bool varlena;

			getTypeOutputInfo(type, &out, &varlena);
			values[i] = OidOutputFunctionCall(out, PG_GETARG_DATUM(i));
		}
	}
	a = remote_call(url, server_model, function, nsend, types, values, model_argno);
	{
		char *fragment;

		url = split_url(url, &fragment);
	}

	if (fcinfo->flinfo->fn_retset)
	{
		ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
		TupleDesc desc;
		Datum *values;
		bool *nulls;

		InitMaterializedSRF(fcinfo, 0);
		desc = rsinfo->setDesc;
		if (a->ncols != desc->natts)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
							errmsg("the model server at %s answered %s() with %d columns, expected "
								   "%d",
								   url, function, a->ncols, desc->natts),
							errhint("Serve the models with a pglite-infer of the same version.")));
		values = palloc(sizeof(Datum) * desc->natts);
		nulls = palloc(sizeof(bool) * desc->natts);
		for (int r = 0; r < a->nrows; r++)
		{
			for (int c = 0; c < desc->natts; c++)
			{
				Form_pg_attribute att = TupleDescAttr(desc, c);
				const char *cell = a->cells[(size_t) r * a->ncols + c];

				nulls[c] = cell == NULL;
				values[c] = cell ? cell_datum(url, cell, att->atttypid, att->atttypmod) : (Datum) 0;
			}
			tuplestore_putvalues(rsinfo->setResult, desc, values, nulls);
		}
		*result = (Datum) 0;
		return true;
	}

	if (a->ncols != 1 || a->nrows != 1)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("the model server at %s answered %s() with %d columns and %d rows, "
							   "expected one value",
							   url, function, a->ncols, a->nrows)));
	if (a->cells[0] == NULL)
	{
		fcinfo->isnull = true;
		*result = (Datum) 0;
		return true;
	}
	*result = cell_datum(url, a->cells[0], rettype, -1);
	return true;
}

/* ---- registration ---- */

/* A value of a (key, value) answer, or NULL. */
static const char *
answer_value(const RemoteAnswer *a, const char *key)
{
	for (int r = 0; r < a->nrows; r++)
		if (a->cells[r * 2] && strcmp(a->cells[r * 2], key) == 0)
			return a->cells[r * 2 + 1];
	return NULL;
}

static int
answer_int(const char *url, const RemoteAnswer *a, const char *key, const char *alt, int fallback)
{
	const char *v = answer_value(a, key);
	char *end;
	long n;

	if (v == NULL && alt)
		v = answer_value(a, alt);
	if (v == NULL)
	{
		if (fallback >= 0)
			return fallback;
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("the model server at %s did not say the model's %s", url, key)));
	}
	n = strtol(v, &end, 10);
	if (*end != '\0' || n < 0 || n > INT_MAX)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("the model server at %s says %s is \"%s\"", url, key, v)));
	return (int) n;
}

/* GET /v1/stats?model=<name, percent-encoded> */
static char *
stats_path(const char *model)
{
	StringInfoData path;

	initStringInfo(&path);
	appendStringInfoString(&path, "/v1/stats?model=");
	for (const char *p = model; *p; p++)
	{
		if (isalnum((unsigned char) *p) || *p == '_' || *p == '-' || *p == '.')
			appendStringInfoChar(&path, *p);
		else
			appendStringInfo(&path, "%%%02X", (unsigned char) *p);
	}
	return path.data;
}

/* The URL without a "#model" fragment, and the fragment (or NULL). */
static char *
split_url(const char *server_url, char **fragment)
{
	char *url = pstrdup(server_url);
	char *hash = strchr(url, '#');

	*fragment = NULL;
	if (hash)
	{
		*hash = '\0';
		if (hash[1])
			*fragment = hash + 1;
	}
	return url;
}

static void
check_url(const char *url)
{
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0 &&
		strncmp(url, "unix:", 5) != 0 && strncmp(url, "uds:", 4) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("\"%s\" is not a model server URL", url),
				 errhint("Use http://host:port, https://host:port, unix:///path/to.sock or "
						 "uds:///path/to.sock (add #name to pick one of the server's models).")));
}

/*
 * Registers `name` as served by the server at server_url: asks the server
 * for the model's shape (GET /v1/stats) and adds the row.
 */
static char *
register_remote(const char *name, const char *server_url)
{
	char *fragment;
	char *url = split_url(server_url, &fragment);
	const char *want = fragment ? fragment : name;
	RemoteAnswer *a;
	int sqlstate = 0;
	const char *server_model;
	const char *level;
	const char *arch;
	const char *dtype;

	model_check_name(name);
	check_url(url);
	if (model_exists(name))
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT), errmsg("model \"%s\" already exists", name),
				 errhint("Drop it first with infer_drop_model('%s').", name)));
	a = host_remote_try(url, stats_path(want), NULL, REMOTE_ANSWER_OBJECT, &sqlstate);
	/* a server of one model that has another name for it (larql-server): that model */
	if (a == NULL && sqlstate == ERRCODE_UNDEFINED_OBJECT && fragment == NULL)
		a = host_remote_try(url, "/v1/stats", NULL, REMOTE_ANSWER_OBJECT, &sqlstate);
	/* else the first answer's error, raised */
	if (a == NULL)
		a = host_remote_request(url, stats_path(want), NULL, REMOTE_ANSWER_OBJECT);

	server_model = answer_value(a, "model");
	if (server_model == NULL || server_model[0] == '\0')
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("the model server at %s did not name its model in /v1/stats", url)));
	level = answer_value(a, "extract_level");
	if (level == NULL || (strcmp(level, "browse") != 0 && strcmp(level, "inference") != 0 &&
						  strcmp(level, "all") != 0))
		level = "browse";
	arch = answer_value(a, "architecture");
	if (arch == NULL)
		arch = answer_value(a, "family");
	dtype = answer_value(a, "dtype");
	model_register_remote(
		name, server_model, level, arch ? arch : "unknown",
		answer_int(url, a, "layers", "num_layers", -1), answer_int(url, a, "hidden_size", NULL, -1),
		answer_int(url, a, "features_per_layer", NULL, 0),
		answer_int(url, a, "vocab_size", NULL, 0), dtype ? dtype : "unknown", server_url);
	return pstrdup(server_model);
}

/* infer_create_model_remote(model_name text, server_url text) -> text */
Datum
infer_create_model_remote(PG_FUNCTION_ARGS)
{
	char *name = text_to_cstring(required_text(fcinfo, 0, "model name"));
	char *url = text_to_cstring(required_text(fcinfo, 1, "server_url"));
	char *server_model = register_remote(name, url);

	PG_RETURN_TEXT_P(cstring_to_text(
		psprintf("model '%s' registered (remote=%s, model '%s')", name, url, server_model)));
}

/* infer_create_models_remote(model_names text[], server_url text) -> int */
Datum
infer_create_models_remote(PG_FUNCTION_ARGS)
{
	char *url = text_to_cstring(required_text(fcinfo, 1, "server_url"));
	Datum *elems;
	bool *nulls;
	int n;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("model_names must not be NULL")));
	deconstruct_array_builtin(PG_GETARG_ARRAYTYPE_P(0), TEXTOID, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		if (nulls[i])
			ereport(ERROR, (errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
							errmsg("model_names must not hold NULL")));
		register_remote(TextDatumGetCString(elems[i]), url);
	}
	PG_RETURN_INT32(n);
}

/*
 * infer_detect_server() -> text: the first model server that answers
 * /v1/health among infer.default_server_url, the Unix sockets
 * /run/larql.sock, /tmp/larql.sock, /tmp/pglite-infer.sock, and
 * http://127.0.0.1:8080; NULL when none does.
 */
Datum
infer_detect_server(PG_FUNCTION_ARGS)
{
	static const char *const candidates[] = {
		"uds:///run/larql.sock",
		"uds:///tmp/larql.sock",
		"uds:///tmp/pglite-infer.sock",
		"http://127.0.0.1:8080",
	};
	int timeout = Min(infer_remote_timeout_ms, 1000);

	if (infer_default_server_url && infer_default_server_url[0] &&
		host_remote_probe(infer_default_server_url, "/v1/health", timeout))
		PG_RETURN_TEXT_P(cstring_to_text(infer_default_server_url));
	for (int i = 0; i < lengthof(candidates); i++)
	{
		INFER_CHECK_INTERRUPTS();
		if (host_remote_probe(candidates[i], "/v1/health", timeout))
			PG_RETURN_TEXT_P(cstring_to_text(candidates[i]));
	}
	PG_RETURN_NULL();
}

/*
 * infer_server_stats(model_name text) -> setof (stat_name text, stat_value text):
 * the server's /v1/stats of the model, then (a pglite-infer server) its
 * /v1/pglite/server figures: requests, queue, memory. Empty for a local model.
 */
Datum
infer_server_stats(PG_FUNCTION_ARGS)
{
	char *name = text_to_cstring(required_text(fcinfo, 0, "model name"));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char *url;
	char *server_model;
	char *fragment;
	RemoteAnswer *parts[2];

	model_check_name(name);
	InitMaterializedSRF(fcinfo, 0);
	if (!model_remote_lookup(name, &url, &server_model))
	{
		if (!model_exists(name))
			ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
							errmsg("model \"%s\" does not exist", name)));
		PG_RETURN_VOID();
	}
	url = split_url(url, &fragment);
	parts[0] = host_remote_request(url, stats_path(server_model), NULL, REMOTE_ANSWER_OBJECT);
	parts[1] = host_remote_request(url, "/v1/pglite/server", NULL, REMOTE_ANSWER_OBJECT);
	for (int p = 0; p < 2; p++)
		for (int r = 0; r < parts[p]->nrows; r++)
		{
			Datum values[2];
			bool nulls[2] = {false, parts[p]->cells[r * 2 + 1] == NULL};

			values[0] = CStringGetTextDatum(parts[p]->cells[r * 2]);
			values[1] = nulls[1] ? (Datum) 0 : CStringGetTextDatum(parts[p]->cells[r * 2 + 1]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	PG_RETURN_VOID();
}

/* ---- the column index on a remote model (index_build.c, index_insert.c, index_scan.c) ---- */

bool
remote_model_name(const char *name)
{
	char *url;
	char *server_model;

	return model_remote_lookup(name, &url, &server_model);
}

/* A remote model's URL and server name; raises when `name` is not a remote model. */
static void
remote_lookup_or_raise(const char *name, char **url, char **server_model)
{
	if (!model_remote_lookup(name, url, server_model))
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("model \"%s\" is no longer a remote model", name),
						errhint("An infer index built on a remote model needs it: REINDEX it.")));
}

/* A non-negative integer cell of the server's answer, else XX001. */
static int32
answer_int_cell(const char *url, const char *cell, const char *what)
{
	char *end;
	long v;

	if (cell == NULL)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("the model server at %s answered NULL for %s", url, what)));
	errno = 0;
	v = strtol(cell, &end, 10);
	if (end == cell || *end != '\0' || errno != 0 || v < 0 || v > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the model server at %s answered \"%.60s\" for %s", url, cell, what)));
	return (int32) v;
}

void
remote_signatures(const char *name, text **inputs, int n, Signature *out)
{
	char *url;
	char *server_model;
	Datum *elems;
	ArrayType *arr;
	Oid out_fn;
	bool varlena;
	const char *types[2] = {"text[]", "text"};
	const char *values[2];
	RemoteAnswer *a;

	remote_lookup_or_raise(name, &url, &server_model);
	for (int i = 0; i < n; i++)
		out[i].n = 0;
	if (n == 0)
		return;
	elems = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
		elems[i] = PointerGetDatum(inputs[i]);
	arr = construct_array_builtin(elems, n, TEXTOID);
	getTypeOutputInfo(TEXTARRAYOID, &out_fn, &varlena);
	values[0] = OidOutputFunctionCall(out_fn, PointerGetDatum(arr));
	values[1] = NULL;
	a = remote_call(url, server_model, "infer_signatures", 2, types, values, 1);
	if (a->ncols != 4)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("the model server at %s answered infer_signatures() with %d "
							   "columns, expected 4",
							   url, a->ncols)));
	for (int r = 0; r < a->nrows; r++)
	{
		int32 ord = answer_int_cell(url, a->cells[(size_t) r * 4], "a signature's ord");
		int32 token = answer_int_cell(url, a->cells[(size_t) r * 4 + 2], "a signature token");
		const char *score = a->cells[(size_t) r * 4 + 3];
		char *end = NULL;
		double conf = score ? strtod(score, &end) : 0;
		Signature *sig;

		if (ord < 1 || ord > n || out[ord - 1].n >= SIGNATURE_SIZE)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
							errmsg("the model server at %s answered infer_signatures() with a "
								   "row for input %d of %d",
								   url, ord, n)));
		if (score == NULL || end == score || *end != '\0' || !(conf > 0 && conf <= 1))
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
							errmsg("the model server at %s answered \"%.60s\" for a signature "
								   "token's confidence",
								   url, score ? score : "NULL")));
		sig = &out[ord - 1];
		sig->ids[sig->n] = token;
		/* the server's float8 is a float4 confidence: the same bits back */
		sig->conf[sig->n] = (float) conf;
		sig->n++;
	}
}

float *
remote_token_dots(const char *name, text *query, const int32 *tokens, int ntok, int *nq,
				  float *weights)
{
	char *url;
	char *server_model;
	StringInfoData list;
	const char *types[3] = {"text", "integer[]", "text"};
	const char *values[3];
	RemoteAnswer *a;
	float *dots = NULL;

	remote_lookup_or_raise(name, &url, &server_model);
	initStringInfo(&list);
	appendStringInfoChar(&list, '{');
	for (int i = 0; i < ntok; i++)
		appendStringInfo(&list, i ? ",%d" : "%d", tokens[i]);
	appendStringInfoChar(&list, '}');
	values[0] = text_to_cstring(query);
	values[1] = list.data;
	values[2] = NULL;
	a = remote_call(url, server_model, "infer_signature_dots", 3, types, values, 2);
	if (a->ncols != 3 || a->nrows != ntok)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("the model server at %s answered infer_signature_dots() with %d "
							   "columns and %d rows, expected 3 and %d",
							   url, a->ncols, a->nrows, ntok)));
	*nq = -1;
	for (int r = 0; r < a->nrows; r++)
	{
		const char *wcell = a->cells[(size_t) r * 3 + 1];
		const char *cell = a->cells[(size_t) r * 3 + 2];
		int k = 0;
		const char *p;
		char *wend = NULL;

		if (answer_int_cell(url, a->cells[(size_t) r * 3], "a token") != tokens[r] ||
			cell == NULL || cell[0] != '{' || wcell == NULL)
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
							errmsg("the model server at %s answered infer_signature_dots() out "
								   "of order or without dots",
								   url)));
		weights[r] = strtof(wcell, &wend);
		if (wend == wcell || *wend != '\0' || !(weights[r] >= 0))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the model server at %s answered \"%.60s\" where a weight belongs", url,
							wcell)));
		if (*nq < 0)
		{
			/* the first row says how many query tokens there are */
			*nq = cell[1] == '}' ? 0 : 1;
			for (p = cell; *p; p++)
				if (*p == ',')
					(*nq)++;
			dots = palloc(sizeof(float) * (size_t) Max(ntok, 1) * Max(*nq, 1));
		}
		p = cell + 1;
		while (*p && *p != '}')
		{
			char *end;
			float v = strtof(p, &end);

			if (end == p || k >= *nq || (*end != ',' && *end != '}'))
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("the model server at %s answered \"%.60s\" where dots belong", url,
								cell)));
			dots[(size_t) r * *nq + k++] = v;
			p = *end == ',' ? end + 1 : end;
		}
		if (k != *nq)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the model server at %s answered rows of different lengths", url)));
	}
	if (*nq < 0)
		*nq = 0;
	return dots;
}
