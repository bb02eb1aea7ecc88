/*
 * host.h: synchronous calls from C into the TypeScript host.
 *
 * The host is the JavaScript object that the pglite-infer package installs
 * as Module.pgInferHost when PGlite loads the extension. Each hook here is an
 * EM_JS function: it runs inside PGlite's JavaScript glue, calls the host,
 * and returns a length. Results travel back in two steps because C must own
 * the memory (palloc, so an ERROR frees it): the host keeps its result, C
 * allocates that many bytes and asks the host to copy them in.
 *
 * A host exception never unwinds through WebAssembly: the glue catches it,
 * and the hook raises it here as an ordinary PostgreSQL ERROR with the
 * host's message and SQLSTATE (default 38000, external_routine_exception).
 */
#ifndef PG_INFER_HOST_H
#define PG_INFER_HOST_H

#include "postgres.h"

/*
 * Token ids of text[0..text_len) under the tokenizer described by
 * tokenizer_json[0..json_len). Returns a palloc'd array; *ntokens is set.
 */
extern int32 *host_tokenize(const char *tokenizer_json, int json_len, const char *text,
							int text_len, bool add_special_tokens, int *ntokens);

/* host_model_open's flags */
#define HOST_OPEN_AUTO_DOWNLOAD 1    /* hf:// sources may be downloaded (infer.auto_download) */
#define HOST_OPEN_VERIFY_CHECKSUMS 2 /* check files against index.json (infer.verify_checksums) */

/*
 * Opens a model source (a vindex directory, URL or hf:// repository) and
 * prepares it under `name`. Returns the model's description (model.h,
 * ModelMeta layout), palloc'd; *len is its size.
 */
extern char *host_model_open(const char *name, const char *source, const char *level,
							 const char *data_directory, int flags, int *len);

/*
 * Copies `nbytes` of part `part` ("gate", "embed", "down_tokens") of layer
 * `layer` of an opened model into dst.
 */
extern void host_model_read(const char *name, const char *part, int layer, void *dst,
							size_t nbytes);

/* A whole file of an opened model (tokenizer.json, ...); empty when absent. */
extern char *host_model_file(const char *name, const char *file, int *len);

/* Gives the host the tokenizer of a model whose data C loaded from pages. */
extern void host_model_adopt(const char *name, const char *json, int json_len, const char *config,
							 int config_len);

/* Forgets a model's source data (after loading, or when it is dropped). */
extern void host_model_release(const char *name, bool forget_tokenizer);

/*
 * Tells the host which models C keeps (names NUL-separated in
 * names[0..len)): it drops every half-opened source and every tokenizer of
 * another model. Called at transaction end; never raises.
 */
extern void host_model_sync(const char *names, int len);

/* Token ids of text under the model's tokenizer; palloc'd. */
extern int32 *host_model_tokenize(const char *name, const char *text, int text_len,
								  bool add_special_tokens, int *ntokens);

/*
 * Decodes each token id on its own. Returns a palloc'd block of n records:
 * a flag byte (bit 0: letters only), the trimmed text, NUL, its lower-case
 * form, NUL, the untrimmed text, NUL.
 */
extern char *host_model_decode(const char *name, const int32 *ids, int n, int *len);

/* text trimmed and lower-cased the way decoded tokens are (palloc'd, NUL-ended). */
extern char *host_normalize(const char *text, int text_len);

/* ---- the host half of the compute seam (compute.c) ---- */

struct GatePass;
struct GateMatrix;

/*
 * The batched gate pass on the host backend that infer.compute names. Returns
 * the hits (palloc'd): nq int32 counts, then nq x k GateHits; or NULL when the
 * backend does not hold model `key` (C then loads it and asks again).
 */
extern char *host_compute_gate_topk(int backend, const char *key, const struct GatePass *pass,
									int hidden, int layers);

/*
 * What host_compute_gate_topk returns under infer.compute = 'auto' when the
 * host serves the pass on no backend (no hardware GPU): compute it in WASM.
 */
extern char host_compute_declined[];

/*
 * Hands the backend layer `layer` (of `layers`) of model `key`'s gate rows,
 * straight from C's heap, with the f16 subnormal fix-ups; the backend copies
 * what it keeps. The last layer completes the load.
 */
extern void host_compute_load_gate(int backend, const char *key, int layer, int layers,
								   const struct GateMatrix *g);

/* The backend forgets model `key` (if it held it). Never raises. */
extern void host_compute_drop(const char *key);

/*
 * One tensor of model `key`'s forward weights, by role name ("l3.q",
 * "embed", "inv_freq", ...: compute.c), straight from C's heap: rows x cols
 * values of f16 (is_f16) or f32, with an f16 matrix's subnormal fix-ups.
 * The backend copies what it keeps; host_compute_load_forward completes the
 * load with the architecture (compute.h ForwardSpecWord).
 */
extern void host_compute_load_tensor(int backend, const char *key, const char *name,
									 const void *data, int rows, int cols, bool is_f16,
									 const void *fix, int nfix);
extern void host_compute_load_forward(int backend, const char *key, const double *spec, int nwords);

/*
 * One forward step of run `run` (positions pos..pos+n-1) on the host
 * backend. want: bit 0 the FFN activations, bit 1 the residuals. Returns
 * the answer (palloc'd, exactly `expect` bytes: compute.c reads it), NULL
 * when the backend does not hold model `key`'s forward weights, or
 * host_compute_declined when backend is 'auto' and the host has no GPU for
 * it (any more).
 */
extern char *host_compute_forward_step(int backend, const char *key, int run, int pos,
									   const int32 *ids, int n, int want, size_t expect);

/*
 * One step of each of `count` runs of model `key` in one call (the backend
 * computes them as one batched pass): run runs[i] at position pos[i] takes
 * counts[i] tokens, `ids` holds them one run's after another's. The answer
 * is each run's as host_compute_forward_step's, one after another (exactly
 * `expect` bytes); NULL when the backend does not hold the model's forward
 * weights. Not for 'auto' (which may decline a run's first step).
 */
extern char *host_compute_forward_steps(int backend, const char *key, int count, const int32 *runs,
										const int32 *pos, const int32 *counts, const int32 *ids,
										int want, size_t expect);

/* The backend frees run `run`'s KV cache. Never raises, never waits. */
extern void host_compute_forward_end(int run);

/*
 * Under infer.compute = 'auto': the host backend that would serve forward
 * steps now (COMPUTE_WEBGPU on a GPU that is not a CPU emulation), or
 * COMPUTE_WASM. Never raises.
 */
extern int host_compute_auto_forward(void);

/*
 * Backend-owned models (compute.c compute_owned_load): tensors staged in the
 * backend's worker without passing through C's heap, then committed.
 *
 * host_compute_stage_part: the host reads part `part` (layer `layer`,
 * `nbytes`) of model `name` from the vindex it opened (model_open) and
 * stages it as tensor `role` (rows x cols, f16 or f32) of model `key`.
 * host_compute_stage_chunk: `n` bytes at byte `offset` of tensor `role`
 * (`total` bytes in all), from C's memory (a chunk of index pages); the
 * chunk at offset 0 starts the tensor. A tensor at offset 0 of role
 * "l0.gate" starts a new load of `key` (what an earlier, cut-short load
 * staged is dropped).
 * host_compute_commit_gate: the staged "l<i>.gate" tensors become the
 * model's gate pass (keep: they stay staged for a forward load to follow).
 * host_compute_columns: column features[i] of the staged W_down of layer
 * layers[i], n x hidden float32 (palloc'd), or NULL when the backend lacks
 * the model.
 */
extern void host_compute_stage_part(int backend, const char *key, const char *role,
									const char *name, const char *part, int layer, int rows,
									int cols, bool is_f16, size_t nbytes);
extern void host_compute_stage_chunk(int backend, const char *key, const char *role, int rows,
									 int cols, bool is_f16, size_t offset, const void *data,
									 size_t n, size_t total);
extern void host_compute_commit_gate(int backend, const char *key, int layers, bool keep);
extern float *host_compute_columns(int backend, const char *key, const int32 *layers,
								   const int32 *features, int n, int hidden);

/*
 * The logit lens's argmax of n normed residual vectors (n x hidden) over a
 * backend-owned model's lm_head (untied: only the backend holds it): n token
 * ids (palloc'd), or NULL when the backend lacks the model.
 */
extern int32 *host_compute_lens(int backend, const char *key, const float *x, int n, int hidden);

/* ---- model servers (remote models, remote.c) ---- */

/* host_remote_request's modes: how the answer is read */
#define REMOTE_ANSWER_NONE 0   /* success is all that matters (a probe) */
#define REMOTE_ANSWER_TABLE 1  /* {columns, rows}: POST /v1/pglite/call */
#define REMOTE_ANSWER_OBJECT 2 /* a JSON object, as rows (key, value) */

/*
 * An answer as the host lays it out: int32 ncols, int32 nrows, ncols
 * NUL-ended column names, then per cell a flag byte (1 value, 0 NULL) and a
 * present value's NUL-ended text. remote_answer_parse() checks and indexes it.
 */
typedef struct RemoteAnswer
{
	int ncols;
	int nrows;
	char **columns;
	char **cells; /* nrows x ncols; NULL for SQL NULL */
} RemoteAnswer;

/*
 * One synchronous request to the model server at `url` (http(s)://, unix://,
 * uds://): GET `path`, or POST `body` to it. Waits at most
 * infer.remote_timeout_ms per attempt, infer.remote_retries more attempts,
 * and never past the statement's deadline (then 57014). A failure raises its
 * SQLSTATE (08001 cannot connect, 08006 connection lost / timed out / server
 * error, XX001 an answer that cannot be read, or the server's own).
 */
extern RemoteAnswer *host_remote_request(const char *url, const char *path, const char *body,
										 int mode);

/*
 * host_remote_request that returns NULL on failure instead of raising, with
 * the failure's SQLSTATE (MAKE_SQLSTATE form) in *sqlstate.
 */
extern RemoteAnswer *host_remote_try(const char *url, const char *path, const char *body, int mode,
									 int *sqlstate);

/* Whether the server at url answers GET path with 2xx within timeout_ms; never raises. */
extern bool host_remote_probe(const char *url, const char *path, int timeout_ms);

#endif /* PG_INFER_HOST_H */
