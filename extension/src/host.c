/*
 * host.c: the C side of the bridge to the TypeScript host (see host.h).
 *
 * The JavaScript side is packages/pglite-infer/src/host/bridge.ts: every
 * EM_JS body below only forwards its arguments to Module.pgInferHost, so the
 * logic (decoding strings from the heap, error capture) is typed TypeScript.
 *
 * In a native build (the same sources compiled against stock PostgreSQL
 * headers, to keep them portable) there is no JavaScript host: the hooks
 * raise a clear error instead.
 */
#include "pg_infer.h"

#include "host.h"

#include "utils/elog.h"

#include "compute.h"
#include "deadline.h"
#include "guc.h"

/*
 * Every text a SQL caller hands to a tokenizer passes here first: the work
 * of tokenizing (and of what follows) must be bounded by a setting, not by
 * what the caller sends.
 */
pg_attribute_unused() static void check_text_size(int text_len)
{
	if (text_len > infer_max_input_bytes)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						errmsg("text of %d bytes is longer than infer.max_input_bytes (%d bytes)",
							   text_len, infer_max_input_bytes),
						errhint("Shorten the text, or raise infer.max_input_bytes.")));
}

/* host_compute_gate_topk's answer when 'auto' finds no host backend for a pass */
char host_compute_declined[1];

#ifdef __EMSCRIPTEN__
#include <stdlib.h>

/*
 * The host's hooks are JavaScript functions the pglite-infer package put in
 * the WebAssembly function table (Module.addFunction, before the backend
 * starts) and whose table indexes it published in the environment:
 *
 *   PGLITE_INFER_HOST=pgi2:<tokenize>,<model_open>,...   (HostHook order)
 *
 * C calls them through function pointers. Nothing here is JavaScript source
 * that PGlite's loader would have to eval (as it must for EM_JS), so
 * pg_infer loads under a Content-Security-Policy without 'unsafe-eval'.
 * Keep the order in step with HOST_HOOKS in
 * packages/pglite-infer/src/host/hooks.ts.
 *
 * Each call returns the result's size in bytes (>= 0), or -1 when the host
 * threw; then pgi_host_error() fetches the message. -2: no host.
 */
#define HOST_HOOKS_VERSION "pgi2:"

typedef enum HostHook
{
	HOOK_TOKENIZE,
	HOOK_MODEL_OPEN,
	HOOK_MODEL_READ,
	HOOK_MODEL_FILE,
	HOOK_MODEL_ADOPT,
	HOOK_MODEL_RELEASE,
	HOOK_MODEL_SYNC,
	HOOK_MODEL_TOKENIZE,
	HOOK_MODEL_DECODE,
	HOOK_NORMALIZE,
	HOOK_COMPUTE_GATE_TOPK,
	HOOK_COMPUTE_LOAD_GATE,
	HOOK_COMPUTE_DROP,
	HOOK_COMPUTE_LOAD_TENSOR,
	HOOK_COMPUTE_LOAD_FORWARD,
	HOOK_COMPUTE_FORWARD_STEP,
	HOOK_COMPUTE_FORWARD_END,
	HOOK_COMPUTE_STAGE_PART,
	HOOK_COMPUTE_STAGE_CHUNK,
	HOOK_COMPUTE_COMMIT_GATE,
	HOOK_COMPUTE_COLUMNS,
	HOOK_COMPUTE_LENS,
	HOOK_COMPUTE_AUTO_FORWARD,
	HOOK_COMPUTE_FORWARD_STEPS,
	HOOK_REMOTE_REQUEST,
	HOOK_TAKE,
	HOOK_ERROR_LEN,
	HOOK_ERROR,
	HOOK_COUNT
} HostHook;

static uintptr_t hooks[HOOK_COUNT];

typedef enum HooksState
{
	HOOKS_UNREAD,
	HOOKS_READY,
	HOOKS_ABSENT,  /* no PGLITE_INFER_HOST: loaded without the package */
	HOOKS_MISMATCH /* another version of the package than of this module */
} HooksState;
static HooksState hooks_state = HOOKS_UNREAD;

static void
read_hooks(void)
{
	const char *spec = getenv("PGLITE_INFER_HOST");
	const char *p;
	int n = 0;

	hooks_state = HOOKS_ABSENT;
	if (spec == NULL)
		return;
	hooks_state = HOOKS_MISMATCH;
	if (strncmp(spec, HOST_HOOKS_VERSION, strlen(HOST_HOOKS_VERSION)) != 0)
		return;
	p = spec + strlen(HOST_HOOKS_VERSION);
	while (*p && n < HOOK_COUNT)
	{
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p || v <= 0)
			return;
		hooks[n++] = (uintptr_t) v;
		p = *end == ',' ? end + 1 : end;
	}
	if (n == HOOK_COUNT && *p == '\0')
		hooks_state = HOOKS_READY;
}

static uintptr_t
host_hook(HostHook h)
{
	if (hooks_state == HOOKS_UNREAD)
		read_hooks();
	return hooks_state == HOOKS_READY ? hooks[h] : 0;
}

/* A call through hook `h` of type `type`, or -2 when there is no host. */
#define CALL_HOOK(h, type, ...) (host_hook(h) ? ((type) host_hook(h))(__VA_ARGS__) : -2)

static int
pgi_host_tokenize(const char *json, int json_len, const char *text, int text_len, int special)
{
	return CALL_HOOK(HOOK_TOKENIZE, int (*)(const char *, int, const char *, int, int), json,
					 json_len, text, text_len, special);
}

static int
pgi_host_model_open(const char *name, const char *source, const char *level, const char *datadir,
					int flags)
{
	return CALL_HOOK(HOOK_MODEL_OPEN,
					 int (*)(const char *, const char *, const char *, const char *, int), name,
					 source, level, datadir, flags);
}

static int
pgi_host_model_read(const char *name, const char *part, int layer, void *dst, double nbytes)
{
	return CALL_HOOK(HOOK_MODEL_READ, int (*)(const char *, const char *, int, void *, double),
					 name, part, layer, dst, nbytes);
}

static int
pgi_host_model_file(const char *name, const char *file)
{
	return CALL_HOOK(HOOK_MODEL_FILE, int (*)(const char *, const char *), name, file);
}

static int
pgi_host_model_adopt(const char *name, const char *json, int json_len, const char *config,
					 int config_len)
{
	return CALL_HOOK(HOOK_MODEL_ADOPT, int (*)(const char *, const char *, int, const char *, int),
					 name, json, json_len, config, config_len);
}

static int
pgi_host_model_release(const char *name, int forget_tokenizer)
{
	return CALL_HOOK(HOOK_MODEL_RELEASE, int (*)(const char *, int), name, forget_tokenizer);
}

static int
pgi_host_model_sync(const char *names, int len)
{
	return CALL_HOOK(HOOK_MODEL_SYNC, int (*)(const char *, int), names, len);
}

static int
pgi_host_model_tokenize(const char *name, const char *text, int text_len, int special)
{
	return CALL_HOOK(HOOK_MODEL_TOKENIZE, int (*)(const char *, const char *, int, int), name, text,
					 text_len, special);
}

static int
pgi_host_model_decode(const char *name, const int *ids, int n)
{
	return CALL_HOOK(HOOK_MODEL_DECODE, int (*)(const char *, const int *, int), name, ids, n);
}

static int
pgi_host_normalize(const char *text, int text_len)
{
	return CALL_HOOK(HOOK_NORMALIZE, int (*)(const char *, int), text, text_len);
}

typedef int (*GateTopKHook)(int, const char *, const float *, int, int, const bool *, int, int, int,
							int, int, int);

static int
pgi_host_compute_gate_topk(int backend, const char *key, const float *queries, int nq, int hidden,
						   const bool *use_layer, int layers, int per_layer_k, int k, int rank,
						   int positive_only, int deadline_ms)
{
	return CALL_HOOK(HOOK_COMPUTE_GATE_TOPK, GateTopKHook, backend, key, queries, nq, hidden,
					 use_layer, layers, per_layer_k, k, rank, positive_only, deadline_ms);
}

typedef int (*LoadGateHook)(int, const char *, int, int, const void *, int, int, int, const void *,
							int);

static int
pgi_host_compute_load_gate(int backend, const char *key, int layer, int layers, const void *data,
						   int rows, int hidden, int dtype, const void *fix, int nfix)
{
	return CALL_HOOK(HOOK_COMPUTE_LOAD_GATE, LoadGateHook, backend, key, layer, layers, data, rows,
					 hidden, dtype, fix, nfix);
}

static int
pgi_host_compute_drop(const char *key)
{
	return CALL_HOOK(HOOK_COMPUTE_DROP, int (*)(const char *), key);
}

typedef int (*LoadTensorHook)(int, const char *, const char *, const void *, int, int, int,
							  const void *, int);

static int
pgi_host_compute_load_tensor(int backend, const char *key, const char *name, const void *data,
							 int rows, int cols, int dtype, const void *fix, int nfix)
{
	return CALL_HOOK(HOOK_COMPUTE_LOAD_TENSOR, LoadTensorHook, backend, key, name, data, rows, cols,
					 dtype, fix, nfix);
}

static int
pgi_host_compute_load_forward(int backend, const char *key, const double *spec, int nwords,
							  int deadline_ms)
{
	return CALL_HOOK(HOOK_COMPUTE_LOAD_FORWARD,
					 int (*)(int, const char *, const double *, int, int), backend, key, spec,
					 nwords, deadline_ms);
}

typedef int (*ForwardStepHook)(int, const char *, int, int, const int32 *, int, int, int);

static int
pgi_host_compute_forward_step(int backend, const char *key, int run, int pos, const int32 *ids,
							  int n, int want, int deadline_ms)
{
	return CALL_HOOK(HOOK_COMPUTE_FORWARD_STEP, ForwardStepHook, backend, key, run, pos, ids, n,
					 want, deadline_ms);
}

typedef int (*ForwardStepsHook)(int, const char *, int, const int32 *, const int32 *, const int32 *,
								const int32 *, int, int);

static int
pgi_host_compute_forward_steps(int backend, const char *key, int count, const int32 *runs,
							   const int32 *pos, const int32 *counts, const int32 *ids, int want,
							   int deadline_ms)
{
	return CALL_HOOK(HOOK_COMPUTE_FORWARD_STEPS, ForwardStepsHook, backend, key, count, runs, pos,
					 counts, ids, want, deadline_ms);
}

static int
pgi_host_compute_forward_end(int run)
{
	return CALL_HOOK(HOOK_COMPUTE_FORWARD_END, int (*)(int), run);
}

static int
pgi_host_compute_auto_forward(void)
{
	return CALL_HOOK(HOOK_COMPUTE_AUTO_FORWARD, int (*)(int), 0);
}

typedef int (*StagePartHook)(int, const char *, const char *, const char *, const char *, int, int,
							 int, int, double);

static int
pgi_host_compute_stage_part(int backend, const char *key, const char *role, const char *name,
							const char *part, int layer, int rows, int cols, int dtype,
							double nbytes)
{
	return CALL_HOOK(HOOK_COMPUTE_STAGE_PART, StagePartHook, backend, key, role, name, part, layer,
					 rows, cols, dtype, nbytes);
}

typedef int (*StageChunkHook)(int, const char *, const char *, int, int, int, double, const void *,
							  int, double);

static int
pgi_host_compute_stage_chunk(int backend, const char *key, const char *role, int rows, int cols,
							 int dtype, double offset, const void *data, int n, double total)
{
	return CALL_HOOK(HOOK_COMPUTE_STAGE_CHUNK, StageChunkHook, backend, key, role, rows, cols,
					 dtype, offset, data, n, total);
}

static int
pgi_host_compute_commit_gate(int backend, const char *key, int layers, int keep, int deadline_ms)
{
	return CALL_HOOK(HOOK_COMPUTE_COMMIT_GATE, int (*)(int, const char *, int, int, int), backend,
					 key, layers, keep, deadline_ms);
}

static int
pgi_host_compute_columns(int backend, const char *key, const int32 *layers, const int32 *features,
						 int n, int hidden)
{
	return CALL_HOOK(HOOK_COMPUTE_COLUMNS,
					 int (*)(int, const char *, const int32 *, const int32 *, int, int), backend,
					 key, layers, features, n, hidden);
}

static int
pgi_host_compute_lens(int backend, const char *key, const float *x, int n, int hidden)
{
	return CALL_HOOK(HOOK_COMPUTE_LENS, int (*)(int, const char *, const float *, int, int),
					 backend, key, x, n, hidden);
}

typedef int (*RemoteRequestHook)(const char *, int, const char *, const char *, int, int, int, int,
								 int);

static int
pgi_host_remote_request(const char *url, int post, const char *path, const char *body, int body_len,
						int timeout_ms, int retries, int deadline_ms, int mode)
{
	return CALL_HOOK(HOOK_REMOTE_REQUEST, RemoteRequestHook, url, post, path, body, body_len,
					 timeout_ms, retries, deadline_ms, mode);
}

/* Copies the pending result (size given by the last call) into dst. */
static void
pgi_host_take(void *dst, int len)
{
	if (host_hook(HOOK_TAKE))
		((void (*)(void *, int)) host_hook(HOOK_TAKE))(dst, len);
}

/* Size of the pending error message in UTF-8 bytes, including the NUL. */
static int
pgi_host_error_len(void)
{
	return CALL_HOOK(HOOK_ERROR_LEN, int (*)(void));
}

/* Copies the pending error: SQLSTATE (5 chars) then the message, NUL-ended. */
static void
pgi_host_error(char *dst, int len)
{
	if (host_hook(HOOK_ERROR))
		((void (*)(char *, int)) host_hook(HOOK_ERROR))(dst, len);
}

/* Raises the host's last error as an ERROR; never returns. */
static void
raise_host_error(const char *hook, int rc)
{
	char *buf;
	int len;

	if (rc == -2 && hooks_state == HOOKS_MISMATCH)
		ereport(ERROR,
				(errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
				 errmsg("pg_infer: the pglite-infer package's host does not match this extension, "
						"so \"%s\" cannot run",
						hook),
				 errdetail("PGLITE_INFER_HOST is \"%s\"; this module reads \"%s\" with %d hooks.",
						   getenv("PGLITE_INFER_HOST"), HOST_HOOKS_VERSION, HOOK_COUNT),
				 errhint("Use the extension bundle of the same pglite-infer version.")));
	if (rc == -2)
		ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_EXCEPTION),
						errmsg("pg_infer: no host is installed, so \"%s\" cannot run", hook),
						errhint("Load the extension through the pglite-infer package: "
								"PGlite.create({ extensions: { pgInfer } }).")));

	len = pgi_host_error_len();
	buf = palloc(len > 6 ? len : 6);
	pgi_host_error(buf, len);
	ereport(ERROR, (errcode(MAKE_SQLSTATE(buf[0], buf[1], buf[2], buf[3], buf[4])),
					errmsg("pg_infer host \"%s\" failed: %s", hook, buf + 5)));
}

/*
 * Raises the host's last error of a model server request with the host's
 * message as it is: it names the server and what to do.
 */
static void
raise_remote_error(int rc)
{
	char *buf;
	int len;

	if (rc == -2)
		raise_host_error("remote_request", rc);
	len = pgi_host_error_len();
	buf = palloc(len > 6 ? len : 6);
	pgi_host_error(buf, len);
	ereport(ERROR, (errcode(MAKE_SQLSTATE(buf[0], buf[1], buf[2], buf[3], buf[4])),
					errmsg("%s", buf + 5)));
}

/* Allocates the pending result of a successful call and copies it in. */
static void *
take_result(int nbytes)
{
	void *dst = palloc(nbytes > 0 ? nbytes : 1);

	pgi_host_take(dst, nbytes);
	return dst;
}

int32 *
host_tokenize(const char *tokenizer_json, int json_len, const char *text, int text_len,
			  bool add_special_tokens, int *ntokens)
{
	int rc;

	check_text_size(text_len);
	rc = pgi_host_tokenize(tokenizer_json, json_len, text, text_len, add_special_tokens ? 1 : 0);
	if (rc < 0)
		raise_host_error("tokenize", rc);
	*ntokens = rc / (int) sizeof(int32);
	return (int32 *) take_result(rc);
}

char *
host_model_open(const char *name, const char *source, const char *level, const char *data_directory,
				int flags, int *len)
{
	int rc = pgi_host_model_open(name, source, level, data_directory, flags);

	if (rc < 0)
		raise_host_error("model_open", rc);
	*len = rc;
	return take_result(rc);
}

void
host_model_read(const char *name, const char *part, int layer, void *dst, size_t nbytes)
{
	/* a double carries sizes past 2 GB exactly through the JS boundary */
	int rc = pgi_host_model_read(name, part, layer, dst, (double) nbytes);

	if (rc < 0)
		raise_host_error("model_read", rc);
}

char *
host_model_file(const char *name, const char *file, int *len)
{
	int rc = pgi_host_model_file(name, file);

	if (rc < 0)
		raise_host_error("model_file", rc);
	*len = rc;
	return take_result(rc);
}

void
host_model_adopt(const char *name, const char *json, int json_len, const char *config,
				 int config_len)
{
	int rc = pgi_host_model_adopt(name, json, json_len, config, config_len);

	if (rc < 0)
		raise_host_error("model_adopt", rc);
}

void
host_model_release(const char *name, bool forget_tokenizer)
{
	int rc = pgi_host_model_release(name, forget_tokenizer ? 1 : 0);

	if (rc < 0)
		raise_host_error("model_release", rc);
}

void
host_model_sync(const char *names, int len)
{
	/* called at transaction end: must not raise, whatever the host says */
	(void) pgi_host_model_sync(names, len);
}

int32 *
host_model_tokenize(const char *name, const char *text, int text_len, bool add_special_tokens,
					int *ntokens)
{
	int rc;

	check_text_size(text_len);
	rc = pgi_host_model_tokenize(name, text, text_len, add_special_tokens ? 1 : 0);
	if (rc < 0)
		raise_host_error("model_tokenize", rc);
	*ntokens = rc / (int) sizeof(int32);
	return (int32 *) take_result(rc);
}

char *
host_model_decode(const char *name, const int32 *ids, int n, int *len)
{
	int rc = pgi_host_model_decode(name, ids, n);

	if (rc < 0)
		raise_host_error("model_decode", rc);
	*len = rc;
	return take_result(rc);
}

char *
host_normalize(const char *text, int text_len)
{
	int rc = pgi_host_normalize(text, text_len);
	char *out;

	if (rc < 0)
		raise_host_error("normalize", rc);
	out = take_result(rc + 1);
	out[rc] = '\0';
	return out;
}

/* compute_gate_topk's answer when the backend does not hold the model */
#define HOST_COMPUTE_NOT_LOADED (-3)
/* ... and under infer.compute = 'auto' when no host backend takes the pass */
#define HOST_COMPUTE_DECLINED_RC (-4)

char *
host_compute_gate_topk(int backend, const char *key, const GatePass *pass, int hidden, int layers)
{
	int rc = pgi_host_compute_gate_topk(backend, key, pass->queries, pass->nq, hidden,
										pass->use_layer, layers, pass->per_layer_k, pass->k,
										pass->rank == RANK_ABS ? 0 : 1, pass->positive_only ? 1 : 0,
										infer_deadline_left_ms());
	size_t expect = sizeof(int32) * pass->nq + sizeof(GateHit) * (size_t) pass->nq * pass->k;

	if (rc == HOST_COMPUTE_NOT_LOADED)
		return NULL;
	if (rc == HOST_COMPUTE_DECLINED_RC && backend == COMPUTE_AUTO)
		return host_compute_declined;
	if (rc < 0)
		raise_host_error("compute_gate_topk", rc);
	if ((size_t) rc != expect)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("the compute backend answered %d bytes, expected %zu", rc, expect)));
	return take_result(rc);
}

void
host_compute_load_gate(int backend, const char *key, int layer, int layers, const GateMatrix *g)
{
	int rc = pgi_host_compute_load_gate(backend, key, layer, layers, g->data, g->rows, g->hidden,
										g->dtype == GATE_F16 ? 1 : 0, g->fix, g->nfix);

	if (rc < 0)
		raise_host_error("compute_load_gate", rc);
}

void
host_compute_drop(const char *key)
{
	/* called when a model is freed, at transaction end: must not raise */
	(void) pgi_host_compute_drop(key);
}

void
host_compute_load_tensor(int backend, const char *key, const char *name, const void *data, int rows,
						 int cols, bool is_f16, const void *fix, int nfix)
{
	int rc = pgi_host_compute_load_tensor(backend, key, name, data, rows, cols, is_f16 ? 1 : 0, fix,
										  nfix);

	if (rc < 0)
		raise_host_error("compute_load_tensor", rc);
}

void
host_compute_load_forward(int backend, const char *key, const double *spec, int nwords)
{
	/* the worker builds its session now (seconds for a large model): under the statement's deadline
	 */
	int rc = pgi_host_compute_load_forward(backend, key, spec, nwords, infer_deadline_left_ms());

	if (rc < 0)
		raise_host_error("compute_load_forward", rc);
}

/*
 * A forward step's answer (exactly `expect` bytes, palloc'd), or NULL when
 * the backend does not hold the model's forward weights.
 */
static char *
step_answer(int rc, const char *hook, const char *what, size_t expect)
{
	if (rc == HOST_COMPUTE_NOT_LOADED)
		return NULL;
	if (rc < 0)
		raise_host_error(hook, rc);
	if ((size_t) rc != expect)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("the compute backend answered %d bytes for %s, expected %zu", rc,
							   what, expect)));
	return take_result(rc);
}

char *
host_compute_forward_step(int backend, const char *key, int run, int pos, const int32 *ids, int n,
						  int want, size_t expect)
{
	int rc = pgi_host_compute_forward_step(backend, key, run, pos, ids, n, want,
										   infer_deadline_left_ms());

	if (rc == HOST_COMPUTE_DECLINED_RC)
		return host_compute_declined;
	return step_answer(rc, "compute_forward_step", "a forward step", expect);
}

char *
host_compute_forward_steps(int backend, const char *key, int count, const int32 *runs,
						   const int32 *pos, const int32 *counts, const int32 *ids, int want,
						   size_t expect)
{
	int rc = pgi_host_compute_forward_steps(backend, key, count, runs, pos, counts, ids, want,
											infer_deadline_left_ms());

	return step_answer(rc, "compute_forward_steps", "a batched forward step", expect);
}

void
host_compute_forward_end(int run)
{
	/* called from a memory context reset callback: must not raise */
	(void) pgi_host_compute_forward_end(run);
}

int
host_compute_auto_forward(void)
{
	/* a question, not a request: no host, or a host that failed, says wasm */
	return pgi_host_compute_auto_forward() == COMPUTE_WEBGPU ? COMPUTE_WEBGPU : COMPUTE_WASM;
}

void
host_compute_stage_part(int backend, const char *key, const char *role, const char *name,
						const char *part, int layer, int rows, int cols, bool is_f16, size_t nbytes)
{
	int rc = pgi_host_compute_stage_part(backend, key, role, name, part, layer, rows, cols,
										 is_f16 ? 1 : 0, (double) nbytes);

	if (rc < 0)
		raise_host_error("compute_stage_part", rc);
}

void
host_compute_stage_chunk(int backend, const char *key, const char *role, int rows, int cols,
						 bool is_f16, size_t offset, const void *data, size_t n, size_t total)
{
	int rc = pgi_host_compute_stage_chunk(backend, key, role, rows, cols, is_f16 ? 1 : 0,
										  (double) offset, data, (int) n, (double) total);

	if (rc < 0)
		raise_host_error("compute_stage_chunk", rc);
}

void
host_compute_commit_gate(int backend, const char *key, int layers, bool keep)
{
	/* the worker builds the gate session now: under the statement's deadline */
	int rc =
		pgi_host_compute_commit_gate(backend, key, layers, keep ? 1 : 0, infer_deadline_left_ms());

	if (rc < 0)
		raise_host_error("compute_commit_gate", rc);
}

float *
host_compute_columns(int backend, const char *key, const int32 *layers, const int32 *features,
					 int n, int hidden)
{
	int rc = pgi_host_compute_columns(backend, key, layers, features, n, hidden);
	size_t expect = sizeof(float) * (size_t) n * hidden;

	if (rc == HOST_COMPUTE_NOT_LOADED)
		return NULL;
	if (rc < 0)
		raise_host_error("compute_columns", rc);
	if ((size_t) rc != expect)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("the compute backend answered %d bytes of columns, expected %zu", rc,
							   expect)));
	return (float *) take_result(rc);
}

int32 *
host_compute_lens(int backend, const char *key, const float *x, int n, int hidden)
{
	int rc = pgi_host_compute_lens(backend, key, x, n, hidden);

	if (rc == HOST_COMPUTE_NOT_LOADED)
		return NULL;
	if (rc < 0)
		raise_host_error("compute_lens", rc);
	if ((size_t) rc != sizeof(int32) * (size_t) n)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("the compute backend answered %d bytes of lens tokens, expected %zu",
							   rc, sizeof(int32) * (size_t) n)));
	return (int32 *) take_result(rc);
}

static RemoteAnswer *
remote_answer_parse(const char *url, const char *buf, int len)
{
	RemoteAnswer *a = palloc0(sizeof(RemoteAnswer));
	int pos = 8;
	size_t ncells;

	if (len < 8)
		goto bad;
	memcpy(&a->ncols, buf, 4);
	memcpy(&a->nrows, buf + 4, 4);
	if (a->ncols < 0 || a->ncols > 1600 || a->nrows < 0)
		goto bad;
	ncells = (size_t) a->ncols * a->nrows;
	if (ncells > (size_t) len)
		goto bad;
	a->columns = palloc0(sizeof(char *) * (a->ncols + 1));
	a->cells = palloc0(sizeof(char *) * (ncells + 1));
	for (int c = 0; c < a->ncols; c++)
	{
		size_t n = bounded_strlen(buf + pos, len - pos);

		if (pos + (int) n >= len)
			goto bad;
		a->columns[c] = (char *) buf + pos;
		pos += n + 1;
	}
	for (size_t i = 0; i < ncells; i++)
	{
		size_t n;

		if (pos >= len)
			goto bad;
		if (buf[pos++] == 0)
			continue;
		n = bounded_strlen(buf + pos, len - pos);
		if (pos + (int) n >= len)
			goto bad;
		a->cells[i] = (char *) buf + pos;
		pos += n + 1;
	}
	if (pos != len)
		goto bad;
	return a;
bad:
	ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
					errmsg("the answer of the model server at %s arrived damaged", url)));
	return NULL;
}

RemoteAnswer *
host_remote_request(const char *url, const char *path, const char *body, int mode)
{
	int deadline = infer_deadline_left_ms();
	int rc;
	char *buf;

	if (deadline == 0)
		ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
						errmsg("canceling statement due to statement timeout")));
	rc = pgi_host_remote_request(url, body != NULL, path, body, body ? (int) strlen(body) : 0,
								 infer_remote_timeout_ms, infer_remote_retries, deadline, mode);
	if (rc < 0)
		raise_remote_error(rc);
	buf = take_result(rc);
	if (mode == REMOTE_ANSWER_NONE)
		return NULL;
	return remote_answer_parse(url, buf, rc);
}

RemoteAnswer *
host_remote_try(const char *url, const char *path, const char *body, int mode, int *sqlstate)
{
	int deadline = infer_deadline_left_ms();
	int rc;
	char *buf;

	if (deadline == 0)
		ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
						errmsg("canceling statement due to statement timeout")));
	rc = pgi_host_remote_request(url, body != NULL, path, body, body ? (int) strlen(body) : 0,
								 infer_remote_timeout_ms, infer_remote_retries, deadline, mode);
	*sqlstate = 0;
	if (rc == -1)
	{
		int len = pgi_host_error_len();
		char *err = palloc(len > 6 ? len : 6);

		pgi_host_error(err, len);
		*sqlstate = MAKE_SQLSTATE(err[0], err[1], err[2], err[3], err[4]);
		pfree(err);
		/* a statement timeout is not a failure to report later: it ends the statement */
		if (*sqlstate == ERRCODE_QUERY_CANCELED)
			ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
							errmsg("canceling statement due to statement timeout")));
		return NULL;
	}
	if (rc < 0)
		raise_remote_error(rc);
	buf = take_result(rc);
	return mode == REMOTE_ANSWER_NONE ? NULL : remote_answer_parse(url, buf, rc);
}

bool
host_remote_probe(const char *url, const char *path, int timeout_ms)
{
	int rc = pgi_host_remote_request(url, 0, path, NULL, 0, timeout_ms, 0, -1, REMOTE_ANSWER_NONE);

	if (rc < 0)
	{
		/* drop the host's error: a probe that fails is an answer, not an error */
		if (rc == -1)
		{
			int len = pgi_host_error_len();
			char *buf = palloc(len > 6 ? len : 6);

			pgi_host_error(buf, len);
			pfree(buf);
		}
		return false;
	}
	pfree(take_result(rc));
	return true;
}

#else /* native build: no JavaScript host */

static void
no_host(const char *hook)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("pg_infer: the host hook \"%s\" exists only in the PGlite (WebAssembly) build",
					hook)));
}

int32 *
host_tokenize(const char *tokenizer_json, int json_len, const char *text, int text_len,
			  bool add_special_tokens, int *ntokens)
{
	no_host("tokenize");
	return NULL;
}

char *
host_model_open(const char *name, const char *source, const char *level, const char *data_directory,
				int flags, int *len)
{
	no_host("model_open");
	return NULL;
}

void
host_model_read(const char *name, const char *part, int layer, void *dst, size_t nbytes)
{
	no_host("model_read");
}

char *
host_model_file(const char *name, const char *file, int *len)
{
	no_host("model_file");
	return NULL;
}

void
host_model_adopt(const char *name, const char *json, int json_len, const char *config,
				 int config_len)
{
	no_host("model_adopt");
}

void
host_model_release(const char *name, bool forget_tokenizer)
{
}

void
host_model_sync(const char *names, int len)
{
}

int32 *
host_model_tokenize(const char *name, const char *text, int text_len, bool add_special_tokens,
					int *ntokens)
{
	no_host("model_tokenize");
	return NULL;
}

char *
host_model_decode(const char *name, const int32 *ids, int n, int *len)
{
	no_host("model_decode");
	return NULL;
}

char *
host_normalize(const char *text, int text_len)
{
	no_host("normalize");
	return NULL;
}

char *
host_compute_gate_topk(int backend, const char *key, const GatePass *pass, int hidden, int layers)
{
	no_host("compute_gate_topk");
	return NULL;
}

void
host_compute_load_gate(int backend, const char *key, int layer, int layers, const GateMatrix *g)
{
	no_host("compute_load_gate");
}

void
host_compute_drop(const char *key)
{
}

void
host_compute_load_tensor(int backend, const char *key, const char *name, const void *data, int rows,
						 int cols, bool is_f16, const void *fix, int nfix)
{
	no_host("compute_load_tensor");
}

void
host_compute_load_forward(int backend, const char *key, const double *spec, int nwords)
{
	no_host("compute_load_forward");
}

char *
host_compute_forward_step(int backend, const char *key, int run, int pos, const int32 *ids, int n,
						  int want, size_t expect)
{
	no_host("compute_forward_step");
	return NULL;
}

char *
host_compute_forward_steps(int backend, const char *key, int count, const int32 *runs,
						   const int32 *pos, const int32 *counts, const int32 *ids, int want,
						   size_t expect)
{
	no_host("compute_forward_steps");
	return NULL;
}

void
host_compute_forward_end(int run)
{
}

int
host_compute_auto_forward(void)
{
	return COMPUTE_WASM;
}

void
host_compute_stage_part(int backend, const char *key, const char *role, const char *name,
						const char *part, int layer, int rows, int cols, bool is_f16, size_t nbytes)
{
	no_host("compute_stage_part");
}

void
host_compute_stage_chunk(int backend, const char *key, const char *role, int rows, int cols,
						 bool is_f16, size_t offset, const void *data, size_t n, size_t total)
{
	no_host("compute_stage_chunk");
}

void
host_compute_commit_gate(int backend, const char *key, int layers, bool keep)
{
	no_host("compute_commit_gate");
}

float *
host_compute_columns(int backend, const char *key, const int32 *layers, const int32 *features,
					 int n, int hidden)
{
	no_host("compute_columns");
	return NULL;
}

int32 *
host_compute_lens(int backend, const char *key, const float *x, int n, int hidden)
{
	no_host("compute_lens");
	return NULL;
}

RemoteAnswer *
host_remote_request(const char *url, const char *path, const char *body, int mode)
{
	no_host("remote_request");
	return NULL;
}

RemoteAnswer *
host_remote_try(const char *url, const char *path, const char *body, int mode, int *sqlstate)
{
	no_host("remote_request");
	return NULL;
}

bool
host_remote_probe(const char *url, const char *path, int timeout_ms)
{
	return false;
}

#endif
