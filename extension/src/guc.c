/*
 * guc.c: the infer.* configuration parameters.
 *
 *   infer.default_model     model used when a function's model argument is NULL
 *   infer.data_directory    where relative model sources live (under PGDATA)
 *   infer.max_memory        MB of WASM heap that loaded models may take
 *   infer.auto_download     may hf:// sources be downloaded and extracted
 *   infer.gate_threshold    describe()'s score cut-off; 0 = adaptive
 *   infer.describe_top_k    features per layer that describe() considers
 *   infer.walk_embed_mode   walk()'s query: 'last' token or 'average'
 *   infer.verify_checksums  check vindex files against index.json's sha256
 *   infer.max_input_bytes   largest text a pg_infer function accepts
 *   infer.max_context       most positions a forward pass runs
 *   infer.compute           compute backend: 'auto', 'wasm', 'onnx' or 'webgpu'
 *   infer.log_level         what pg_infer reports of its own work: 'warning' (nothing),
 *                           'info' (loads, backends: INFO), 'debug' (and each call: DEBUG1)
 */
#include "pg_infer.h"

#include "utils/guc.h"

#include "compute.h"
#include "guc.h"
#include "stats.h"

char *infer_default_model = NULL;
char *infer_data_directory = NULL;
int infer_max_memory_mb = 8192;
bool infer_auto_download = true;
double infer_gate_threshold = 0.0;
double infer_min_confidence = 0.5;
int infer_describe_top_k = 20;
int infer_walk_embed_mode = WALK_EMBED_LAST;
bool infer_verify_checksums = true;
int infer_max_input_bytes = 1024 * 1024;
int infer_max_context = 8192;
int infer_remote_timeout_ms = 30000;
int infer_remote_retries = 2;
char *infer_default_server_url = NULL;
int infer_compute = COMPUTE_AUTO;

static const struct config_enum_entry walk_embed_modes[] = {
	{"last", WALK_EMBED_LAST, false},
	{"average", WALK_EMBED_AVERAGE, false},
	{NULL, 0, false},
};

/* pg_infer's names, and the peer's tracing levels as aliases (hidden) */
static const struct config_enum_entry log_levels[] = {
	{"error", INFER_LOG_ERROR, false}, {"warning", INFER_LOG_WARNING, false},
	{"info", INFER_LOG_INFO, false},   {"debug", INFER_LOG_DEBUG, false},
	{"off", INFER_LOG_ERROR, true},    {"warn", INFER_LOG_WARNING, true},
	{"trace", INFER_LOG_DEBUG, true},  {NULL, 0, false},
};

static const struct config_enum_entry compute_backends[] = {
	{"auto", COMPUTE_AUTO, false},
	{"wasm", COMPUTE_WASM, false},
	{"onnx", COMPUTE_ONNX, false},
	{"webgpu", COMPUTE_WEBGPU, false},
	{NULL, 0, false},
};

/*
 * infer.compute's default: 'auto', or what the host asked for with
 * pgInfer({ compute: 'onnx' }) (it sets PGLITE_INFER_COMPUTE before the
 * backend starts; packages/pglite-infer/src/index.ts).
 */
static int
compute_default(void)
{
	const char *env = getenv("PGLITE_INFER_COMPUTE");

	if (env != NULL)
		for (const struct config_enum_entry *e = compute_backends; e->name; e++)
			if (strcmp(e->name, env) == 0)
				return e->val;
	return COMPUTE_AUTO;
}

/*
 * The data directory is a relative path below PGDATA, made of plain names: no
 * absolute path, no "." or "..", no hidden or PostgreSQL directory (base,
 * global, pg_*), so relative model sources can only name files of its own.
 */
static bool
check_data_directory(char **newval, void **extra, GucSource source)
{
	const char *p = *newval;

	if (p == NULL || p[0] == '\0')
	{
		GUC_check_errdetail("infer.data_directory must not be empty.");
		return false;
	}
	if (p[0] == '/')
	{
		GUC_check_errdetail(
			"infer.data_directory must be relative to the data directory, not \"%s\".", p);
		return false;
	}
	for (const char *s = p; *s;)
	{
		const char *slash = strchr(s, '/');
		const char *end = slash ? slash : s + strlen(s);
		size_t n = end - s;
		bool plain = n > 0 && s[0] != '.';

		for (const char *c = s; c < end && plain; c++)
			plain = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
					(*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.';
		if (!plain || (s == p && ((n == 4 && strncmp(s, "base", 4) == 0) ||
								  (n == 6 && strncmp(s, "global", 6) == 0) ||
								  (n >= 3 && strncmp(s, "pg_", 3) == 0))))
		{
			GUC_check_errdetail("infer.data_directory must be a relative path of plain names "
								"(letters, digits, '_', '-', '.' not first), and not one of "
								"PostgreSQL's own directories; \"%s\" is not.",
								p);
			return false;
		}
		s = *end ? end + 1 : end;
	}
	return true;
}

void
infer_define_gucs(void)
{
	/* natively 8 GB; in PGlite never more than the WASM heap can hold */
	int max_memory_cap = 8192;

#ifdef __EMSCRIPTEN__
	max_memory_cap = INFER_WASM_HEAP_MAX_MB;
#endif
	if (infer_max_memory_mb > max_memory_cap)
		infer_max_memory_mb = max_memory_cap;

	DefineCustomStringVariable("infer.default_model",
							   "Model used when a pg_infer function gets no model argument.", NULL,
							   &infer_default_model, NULL, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable(
		"infer.data_directory",
		"Directory, relative to the database's data directory, holding model sources given as "
		"relative paths.",
		NULL, &infer_data_directory, "infer", PGC_USERSET, 0, check_data_directory, NULL, NULL);
	DefineCustomIntVariable("infer.max_memory",
							"Memory that loaded models may use in total, in megabytes.", NULL,
							&infer_max_memory_mb, max_memory_cap, 1, max_memory_cap, PGC_USERSET,
							GUC_UNIT_MB, NULL, NULL, NULL);
	DefineCustomBoolVariable("infer.auto_download",
							 "Allow hf:// model sources to be downloaded and extracted.", NULL,
							 &infer_auto_download, true, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomRealVariable("infer.gate_threshold",
							 "Smallest gate score describe() keeps; 0 means adaptive (10% of the "
							 "entity's largest score).",
							 NULL, &infer_gate_threshold, 0.0, 0.0, 1e9, PGC_USERSET, 0, NULL, NULL,
							 NULL);
	DefineCustomRealVariable("infer.min_confidence",
							 "Smallest confidence of a predicted answer that describe() shows and "
							 "implies() accepts.",
							 NULL, &infer_min_confidence, 0.5, 0.0, 1.0, PGC_USERSET, 0, NULL, NULL,
							 NULL);
	DefineCustomIntVariable("infer.describe_top_k", "Features per layer that describe() considers.",
							NULL, &infer_describe_top_k, 20, 1, 1000, PGC_USERSET, 0, NULL, NULL,
							NULL);
	DefineCustomEnumVariable("infer.walk_embed_mode",
							 "Query vector of walk(): the last token's embedding or the average.",
							 NULL, &infer_walk_embed_mode, WALK_EMBED_LAST, walk_embed_modes,
							 PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("infer.verify_checksums",
							 "Check each vindex file against the sha256 in its index.json when a "
							 "model loads.",
							 NULL, &infer_verify_checksums, true, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("infer.max_input_bytes",
							"Largest text (prompt, entity, tokenized input) a pg_infer function "
							"accepts, in bytes.",
							NULL, &infer_max_input_bytes, 1024 * 1024, 1, 64 * 1024 * 1024,
							PGC_USERSET, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("infer.max_context",
							"Most token positions one forward pass runs, whatever the model's own "
							"context.",
							NULL, &infer_max_context, 8192, 1, 1 << 20, PGC_USERSET, 0, NULL, NULL,
							NULL);
	DefineCustomIntVariable("infer.remote_timeout_ms",
							"Longest wait for one answer of a model server (remote models), per "
							"attempt.",
							NULL, &infer_remote_timeout_ms, 30000, 1, 3600 * 1000, PGC_USERSET,
							GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("infer.remote_retries",
							"Further attempts of a model server request that could not connect or "
							"found the server busy.",
							NULL, &infer_remote_retries, 2, 0, 10, PGC_USERSET, 0, NULL, NULL,
							NULL);
	DefineCustomStringVariable("infer.default_server_url",
							   "Model server that infer_detect_server() tries first.", NULL,
							   &infer_default_server_url, NULL, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable(
		"infer.compute",
		"Compute backend of the gate passes: 'auto' (the built-in 'wasm' kernels; "
		"batches on a hardware GPU when there is one), 'wasm', 'onnx' (ONNX Runtime in a "
		"worker thread), or 'webgpu' (a GPU through WebGPU, in a worker thread).",
		"Models loaded under 'onnx' are owned by that backend: their weights stay out of "
		"the WASM heap.",
		&infer_compute, compute_default(), compute_backends, PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomEnumVariable(
		"infer.log_level",
		"What pg_infer reports of its own work: 'warning' (nothing beyond warnings and errors), "
		"'info' (model loads and compute backends, as INFO), 'debug' (also one DEBUG1 line per "
		"call: function, model, rows, time, cache).",
		NULL, &infer_log_level, INFER_LOG_WARNING, log_levels, PGC_USERSET, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("infer");
}
