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

#ifdef __EMSCRIPTEN__
#include <emscripten.h>

/*
 * Each call returns the result's size in bytes (>= 0), or -1 when the host
 * threw; then pgi_host_error() fetches the message. A missing host (the
 * extension was loaded without the pglite-infer package) is reported by the
 * bridge the same way when it exists, and here when it does not.
 */
EM_JS(int, pgi_host_tokenize,
	  (const char *json, int json_len, const char *text, int text_len, int special), {
		  if (!Module.pgInferHost)
			  return -2;
		  return Module.pgInferHost.tokenize(Module, json, json_len, text, text_len, special);
	  });

EM_JS(int, pgi_host_model_open,
	  (const char *name, const char *source, const char *level, const char *datadir, int flags), {
		  if (!Module.pgInferHost)
			  return -2;
		  return Module.pgInferHost.modelOpen(Module, name, source, level, datadir, flags);
	  });

EM_JS(int, pgi_host_model_read,
	  (const char *name, const char *part, int layer, void *dst, double nbytes), {
		  if (!Module.pgInferHost)
			  return -2;
		  return Module.pgInferHost.modelRead(Module, name, part, layer, dst, nbytes);
	  });

EM_JS(int, pgi_host_model_file, (const char *name, const char *file), {
	if (!Module.pgInferHost)
		return -2;
	return Module.pgInferHost.modelFile(Module, name, file);
});

EM_JS(int, pgi_host_model_adopt,
	  (const char *name, const char *json, int json_len, const char *config, int config_len), {
		  if (!Module.pgInferHost)
			  return -2;
		  return Module.pgInferHost.modelAdopt(Module, name, json, json_len, config, config_len);
	  });

EM_JS(int, pgi_host_model_release, (const char *name, int forget_tokenizer), {
	if (!Module.pgInferHost)
		return -2;
	return Module.pgInferHost.modelRelease(Module, name, forget_tokenizer);
});

EM_JS(int, pgi_host_model_sync, (const char *names, int len), {
	if (!Module.pgInferHost)
		return -2;
	return Module.pgInferHost.modelSync(Module, names, len);
});

EM_JS(int, pgi_host_model_tokenize, (const char *name, const char *text, int text_len, int special),
	  {
		  if (!Module.pgInferHost)
			  return -2;
		  return Module.pgInferHost.modelTokenize(Module, name, text, text_len, special);
	  });

EM_JS(int, pgi_host_model_decode, (const char *name, const int *ids, int n), {
	if (!Module.pgInferHost)
		return -2;
	return Module.pgInferHost.modelDecode(Module, name, ids, n);
});

EM_JS(int, pgi_host_normalize, (const char *text, int text_len), {
	if (!Module.pgInferHost)
		return -2;
	return Module.pgInferHost.normalize(Module, text, text_len);
});

EM_JS(int, pgi_host_compute_gate_topk,
	  (int backend, const char *key, const float *queries, int nq, int hidden,
	   const bool *use_layer, int layers, int per_layer_k, int k, int rank, int positive_only,
	   int deadline_ms),
	  {
		  if (!Module.pgInferHost)
			  return -2;
		  return Module.pgInferHost.computeGateTopK(Module, backend, key, queries, nq, hidden,
													use_layer, layers, per_layer_k, k, rank,
													positive_only, deadline_ms);
	  });

EM_JS(int, pgi_host_compute_load_gate,
	  (int backend, const char *key, int layer, int layers, const void *data, int rows, int hidden,
	   int dtype, const void *fix, int nfix),
	  {
		  if (!Module.pgInferHost)
			  return -2;
		  return Module.pgInferHost.computeLoadGate(Module, backend, key, layer, layers, data, rows,
													hidden, dtype, fix, nfix);
	  });

EM_JS(int, pgi_host_compute_drop, (const char *key), {
	if (!Module.pgInferHost)
		return -2;
	return Module.pgInferHost.computeDrop(Module, key);
});

/* Copies the pending result (size given by the last call) into dst. */
EM_JS(void, pgi_host_take, (void *dst, int len), { Module.pgInferHost.take(Module, dst, len); });

/* Size of the pending error message in UTF-8 bytes, including the NUL. */
EM_JS(int, pgi_host_error_len, (void), { return Module.pgInferHost.errorLength(); });

/* Copies the pending error: SQLSTATE (5 chars) then the message, NUL-ended. */
EM_JS(void, pgi_host_error, (char *dst, int len),
	  { Module.pgInferHost.takeError(Module, dst, len); });

/* Raises the host's last error as an ERROR; never returns. */
static void
raise_host_error(const char *hook, int rc)
{
	char *buf;
	int len;

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

char *
host_compute_gate_topk(const char *key, const GatePass *pass, int hidden, int layers)
{
	int rc = pgi_host_compute_gate_topk(infer_compute, key, pass->queries, pass->nq, hidden,
										pass->use_layer, layers, pass->per_layer_k, pass->k,
										pass->rank == RANK_ABS ? 0 : 1, pass->positive_only ? 1 : 0,
										infer_deadline_left_ms());
	size_t expect = sizeof(int32) * pass->nq + sizeof(GateHit) * (size_t) pass->nq * pass->k;

	if (rc == HOST_COMPUTE_NOT_LOADED)
		return NULL;
	if (rc < 0)
		raise_host_error("compute_gate_topk", rc);
	if ((size_t) rc != expect)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
						errmsg("the compute backend answered %d bytes, expected %zu", rc, expect)));
	return take_result(rc);
}

void
host_compute_load_gate(const char *key, int layer, int layers, const GateMatrix *g)
{
	int rc = pgi_host_compute_load_gate(infer_compute, key, layer, layers, g->data, g->rows,
										g->hidden, g->dtype == GATE_F16 ? 1 : 0, g->fix, g->nfix);

	if (rc < 0)
		raise_host_error("compute_load_gate", rc);
}

void
host_compute_drop(const char *key)
{
	/* called when a model is freed, at transaction end: must not raise */
	(void) pgi_host_compute_drop(key);
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
host_compute_gate_topk(const char *key, const GatePass *pass, int hidden, int layers)
{
	no_host("compute_gate_topk");
	return NULL;
}

void
host_compute_load_gate(const char *key, int layer, int layers, const GateMatrix *g)
{
	no_host("compute_load_gate");
}

void
host_compute_drop(const char *key)
{
}

#endif
