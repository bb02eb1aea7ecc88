/*
 * guc.h: the infer.* configuration parameters (guc.c).
 */
#ifndef PG_INFER_GUC_H
#define PG_INFER_GUC_H

/* Largest WebAssembly heap PGlite can grow to (wasm32: 2 GiB). */
#define INFER_WASM_HEAP_MAX_MB 2048

typedef enum WalkEmbedMode
{
	WALK_EMBED_LAST,
	WALK_EMBED_AVERAGE
} WalkEmbedMode;

extern char *infer_default_model;
extern char *infer_data_directory;
extern int infer_max_memory_mb;
extern bool infer_auto_download;
extern double infer_gate_threshold;
extern int infer_describe_top_k;
extern double infer_min_confidence;
extern int infer_walk_embed_mode;
extern bool infer_verify_checksums;
extern int infer_max_input_bytes;
extern int infer_max_context;
extern int infer_compute; /* ComputeBackendKind (compute.h) */
extern int infer_remote_timeout_ms;
extern int infer_remote_retries;
extern char *infer_default_server_url;

extern void infer_define_gucs(void);

#endif /* PG_INFER_GUC_H */
