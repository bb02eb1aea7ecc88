/*
 * model.h: models loaded into the WASM heap, and the registry that names
 * them (model.c).
 *
 * A model's knowledge-query data lives in C memory so the kernels can read
 * it directly: per layer the gate rows, the embedding matrix, and per
 * feature its top down_meta tokens. The tokenizer stays with the host.
 */
#ifndef PG_INFER_MODEL_H
#define PG_INFER_MODEL_H

#include "postgres.h"

#include "gate_knn.h"

#define MODEL_NAME_MAX 63

typedef enum LayerBand
{
	BAND_SYNTAX = 0,
	BAND_KNOWLEDGE = 1,
	BAND_OUTPUT = 2
} LayerBand;

/*
 * The description the host returns from model_open: int32 words, then
 * NUL-ended strings (architecture, family, dtype). Keep in step with
 * packages/pglite-infer/src/host/models.ts (encodeMeta).
 */
#define MODEL_META_VERSION 1
typedef enum ModelMetaWord
{
	META_VERSION,
	META_LAYERS,
	META_HIDDEN,
	META_VOCAB,
	META_GATE_DTYPE,
	META_EMBED_DTYPE,
	META_DOWN_TOP_K,
	META_EMBED_SCALE, /* float32 bits */
	META_LEVEL,
	META_FIXED_WORDS /* then features[layers], band[layers] */
} ModelMetaWord;

/*
 * Reads one part ("gate", "down_tokens", "down_logits", "embed", "config",
 * "weight:...") of a model being loaded.
 */
typedef void (*PartReadFn)(void *state, const char *name, const char *part, int layer, void *dst,
						   size_t nbytes);

/*
 * Streams one part of a model being loaded into the host compute backend,
 * as tensor `role` (rows x cols of the gate dtype) of model `key`, without
 * holding the whole part in C's heap: from the host's files
 * (host_compute_stage_part) or from index pages in chunks
 * (model_index_stream). NULL: compute.c reads the part with PartReadFn into
 * a transient buffer and sends it in chunks.
 */
typedef void (*PartStreamFn)(void *state, const char *name, const char *part, int layer,
							 const char *key, const char *role, int rows, int cols, bool is_f16,
							 size_t nbytes);

typedef struct InferModel
{
	char name[MODEL_NAME_MAX + 1];
	char *source;
	char *architecture;
	char *family;
	int layers;
	int hidden;
	int vocab;
	int level;       /* as registered: 0 browse, 1 inference, 2 all */
	int *features;   /* per layer */
	LayerBand *band; /* per layer */
	GateDtype gate_dtype;
	GateMatrix *gate; /* per layer: features x hidden */
	GateDtype embed_dtype;
	void *embed; /* vocab x hidden */
	float embed_scale;
	int down_top_k;
	int32 **down_tokens;      /* per layer: features x down_top_k token ids */
	float **down_logits;      /* per layer: features x down_top_k logits, descending */
	struct ForwardModel *fwd; /* inference weights (forward.h); NULL at level browse */
	/* where parts come from while the model loads (host files or index pages) */
	PartReadFn read_part;
	PartStreamFn stream_part;
	void *read_state;
	/*
	 * Backend-owned (loaded under infer.compute = 'onnx'): the gate rows and
	 * the forward matrices live only in the onnx backend's worker; gate[l]
	 * and the ForwardModel's matrices have no data here (compute.c).
	 */
	bool owned;
	size_t bytes; /* heap bytes held, inference weights included */
	MemoryContext cxt;
	/*
	 * The (sub)transaction that loaded it, until that commits: a rollback
	 * unloads what it loaded, so no model outlives the row that named it.
	 */
	SubTransactionId subid;
	/* unique per load in this backend: caches key on it, not on the pointer */
	uint64 generation;
	/* knowledge.c, similar.c: computed on first use */
	int word_start_space; /* 0 unknown, 1 no, 2 yes: does the tokenizer mark word starts? */
	float *embed_mean;    /* hidden: the mean input embedding over the vocabulary */
	float *state_mean;    /* hidden: the mean knowledge state over a vocabulary sample */
	float **token_state;  /* vocab: a token's unit knowledge vector, NULL until computed */
	float *token_weight; /* vocab: signature specificity weights (similar.c), NULL until computed */
	struct SignatureCacheEntry **signature_cache; /* similar.c: recent texts' signatures */
} InferModel;

/*
 * The model a SQL function was asked for: `name`, or infer.default_model
 * when NULL. Loads it on first use in this backend. Raises a clear error
 * for an unknown model or an unset default.
 */
extern InferModel *model_get(text *name);

/* The model loaded under `name` in this backend, or NULL; loads nothing. */
extern InferModel *model_find_loaded(const char *name);

/* Top down_meta token of a feature. */
static inline int32
model_concept_token(const InferModel *m, int layer, int feature)
{
	return m->down_tokens[layer][(size_t) feature * m->down_top_k];
}

extern const char *band_name(LayerBand band);

/* Refuses names that are not 1-63 bytes of [A-Za-z0-9_] (then also - .). */
extern void model_check_name(const char *name);

/* Fills m's shape (m->cxt set) from a model description; returns heap bytes. */
extern size_t model_parse_meta(InferModel *m, const char *buf, int len);

/*
 * Loads a model from its description and a part reader, and keeps it
 * loaded in this backend (model.c).
 */
extern InferModel *load_parts(const char *name, const char *source, const char *level,
							  const char *meta, int metalen, PartReadFn read, PartStreamFn stream,
							  void *state);

/*
 * Opens model m's source again (host files or index pages), sets
 * m->read_part / stream_part / read_state, runs fn(m) and closes the source:
 * compute.c streams an owned model into its backend again this way after a
 * worker restart.
 */
extern void model_with_source(InferModel *m, void (*fn)(InferModel *m));

/*
 * Where models come from. The registry (model.c) opens a model's source by
 * the prefix of its source string and knows no source but through this: a
 * source registers itself at _PG_init (index_model.c: 'index:', a model
 * stored in index pages); anything no source claims is a vindex the host
 * opens (host files, URLs, hf://).
 */
typedef struct ModelSource
{
	const char *prefix;
	/* the model's description (meta words, palloc'd); *state for the part readers */
	char *(*open)(const char *name, const char *rest, const char *level, int *metalen,
				  void **state);
	PartReadFn read;
	PartStreamFn stream;
	void (*close)(const char *name, void *state);
	/* whether what `rest` names is still there (a dropped index) */
	bool (*exists)(const char *rest);
} ModelSource;

extern void model_register_source(const ModelSource *source);

/*
 * What other modules do as a model loads and goes, registered at _PG_init
 * (forward.c: the forward weights; compute.c: backend-owned weights and a
 * backend's copies), called in registration order; any may be NULL.
 */
typedef struct ModelLoadHooks
{
	/* whether the model's gate rows stay out of the heap (a backend owns them) */
	bool (*owns)(const InferModel *m);
	/*
	 * For a model that is not owned and does not fit infer.max_memory: how
	 * to load it outside the heap (the end of the error's hint), or NULL
	 */
	const char *(*outside_heap_hint)(const InferModel *m);
	/* heap bytes the hook will load beyond gate, down_meta and embed */
	int64 (*plan)(InferModel *m);
	/* gate and embed are in the heap (the forward pass points into them) */
	void (*load)(InferModel *m);
	/* everything is in the heap, the source still open (read_part, stream_part) */
	void (*loaded)(InferModel *m);
	/* the model's memory goes (transaction end); must not raise */
	void (*freed)(InferModel *m);
} ModelLoadHooks;

extern void model_register_hooks(const ModelLoadHooks *hooks);

/* Whether infer.models has a row for this name. */
extern bool model_exists(const char *name);

/*
 * Whether `name` is a remote model (backend 'remote'); then its server's URL
 * and the server's name for it (the row's source), palloc'd.
 */
extern bool model_remote_lookup(const char *name, char **server_url, char **server_model);

/* Adds a remote model's row to infer.models (remote.c). */
extern void model_register_remote(const char *name, const char *server_model, const char *level,
								  const char *architecture, int layers, int hidden, int features,
								  int vocab, const char *dtype, const char *server_url);

/* Adds a row to infer.models. */
extern void model_register(const InferModel *m, const char *source, const char *level);

/* Sources of models stored in an `infer` model index: 'index:<index name>'. */
#define MODEL_INDEX_SOURCE_PREFIX "index:"

/* index_model.c: registers the 'index:' source and its transaction callback (_PG_init). */
extern void model_index_init(void);

/* Whether a model's registry row says it is stored in model index `index_name`. */
extern bool model_stored_in_index(const char *index_name);

/* index_model.c: copies of every model index's pages, for a rebuild to write back. */
extern void model_index_snapshot_all(void);
extern void model_index_forget_snapshots(void);

/* utility.c: checks on DDL that would cut a model's dependencies (_PG_init). */
extern void utility_guards_init(void);

/* host_model_open's flags (host.h) as the GUCs set them. */
extern int model_open_flags(void);

/* Registers the transaction callbacks that keep loaded models in step (_PG_init). */
extern void model_registry_init(void);

/* Heap bytes every model loaded in this backend holds (for infer.max_memory). */
extern size_t model_loaded_bytes(void);

/* Bytes of a gate or embedding element. */
static inline size_t
dtype_size(GateDtype d)
{
	return d == GATE_F32 ? 4 : 2;
}

#endif /* PG_INFER_MODEL_H */
